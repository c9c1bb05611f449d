"""Experiment drivers that train and evaluate many runs: jobs, repeated seeds, sweeps."""
