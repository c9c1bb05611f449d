"""The on-disk formats through which the stages talk, one module per format; torch-free (the dashboard imports it).

``dataset_dir``: a prepared data set; ``depth_cache``: its depth maps; ``run_dir``: a training run's directory;
``metrics``: the run's ``metrics.jsonl`` records; ``jsonl``: the tolerant reader every JSONL consumer uses.
"""
