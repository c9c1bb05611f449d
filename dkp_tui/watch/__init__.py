"""`dkp watch`: a read-only live dashboard over run directories (never imports torch, so it starts fast).

``tail`` reads metrics incrementally, ``state`` models runs, ``braille``/``format`` draw text, ``sysstats`` samples
CPU/RAM/GPUs, ``app`` is the Textual app (``run_dashboard``), ``once`` the one-shot snapshot (``dkp watch --once``).
"""
