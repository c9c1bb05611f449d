"""`--nproc N` of `dkp train` and `dkp depth`: re-run the same command line under torchrun, one process per GPU."""

from __future__ import annotations

import subprocess
import sys

from dkp_tui.commands.common import console


def strip_flag(argv: list[str], flag: str, takes_value: bool) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == flag:
            skip = takes_value
            continue
        if takes_value and arg.startswith(flag + "="):
            continue
        out.append(arg)
    return out


def relaunch_torchrun(nproc: int) -> int:
    """`dkp CMD --nproc N ...` is `torchrun --standalone --nproc-per-node N -m dkp_tui -- CMD ...`."""
    args = strip_flag(sys.argv[1:], "--nproc", takes_value=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "dkp_tui", "--", *args]  # `--`: torchrun would take `--run` as its own `--run-path`
    console.print(f"launching: {' '.join(cmd[2:])}")  # stderr: --json output stays alone on stdout
    return subprocess.call(cmd)  # each rank runs `-m dkp_tui`, whose __init__ sets its OpenMP wait policy
