"""Shared fixtures: a tiny synthetic data set (built once per session) and a tiny, fast training config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dkp_testing import tiny_overrides as tiny_overrides_fn

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network

# One torch thread per test process: the suite runs one xdist worker per core (pyproject addopts), and tests whose
# tolerances were measured on one thread (the method test, DDP against one process) stay bit-for-bit what they were
# whichever worker, and after whichever other test, they run. Subprocesses (dkp CLI runs) get the same.
TEST_THREADS = 1
os.environ["OMP_NUM_THREADS"] = str(TEST_THREADS)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per core, plus one. Several tests spend their time waiting on processes of their own
    (the Slurm cluster's jobs, DDP and depth ranks, the method tests' second training), so one worker more than
    cores keeps the cores busy while they wait; every process is single-threaded (TEST_THREADS)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores + 1


def _pin_threads() -> None:
    import torch

    if torch.get_num_threads() != TEST_THREADS:
        torch.set_num_threads(TEST_THREADS)


_pin_threads()


@pytest.fixture(autouse=True)
def _torch_threads():
    """A test (or code it calls, e.g. a config's train.threads) that changes torch's thread count does not leak it."""
    yield
    _pin_threads()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64-px cluttered synthetic set: 48 train, 24 fit, 24 test images with exact depth."""
    from dkp_tui.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("data") / "synthetic"
    generate_dataset(root, size=64, n_train=48, n_fit=24, n_test=24, background="cluttered", seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_overrides():
    """``tiny_overrides(dataset, iterations=4, kd__gamma=0.5)`` -> list of ``section.key=value`` strings."""
    return tiny_overrides_fn


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A single-node Slurm cluster on localhost (tests/slurm_testing.py), started once per session.

    Skipped with the reason where this machine cannot start one (not root, slurm-wlm or munge not installed),
    except under DKP_REQUIRE_SLURM=1 (`.ci/run` sets it): there the reason fails the test, so CI never goes green
    without running it."""
    import slurm_testing

    reason = slurm_testing.why_not()
    if reason is not None:
        if os.environ.get("DKP_REQUIRE_SLURM") == "1":
            pytest.fail(f"DKP_REQUIRE_SLURM=1 but no Slurm test cluster: {reason}")
        pytest.skip(reason)
    cluster = slurm_testing.start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()
