"""`python -m dkp_tui` (what `torchrun -m dkp_tui train ...` runs)."""

from dkp_tui.cli import main

main()
