"""SIGTERM ends a training run the way Ctrl-C does.

Schedulers pre-empt jobs with SIGTERM, `dkp train --watch` stops its child with it, and `kill` sends it by default.
Python's default action kills the process on the spot, which left run.json saying "running" and the run looking
stalled; raised as an exception instead, the loop's handler records where the run stopped and how to resume.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so that ``except KeyboardInterrupt`` handlers see it too."""

    signum = signal.SIGTERM


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated; only the main thread may install signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
