"""Helpers shared by the CLI commands: error mapping, console, JSON output."""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

import typer

from dkp_tui.console import console as console  # re-exported: the commands print on it
from dkp_tui.errors import DkpError, os_error_text

F = TypeVar("F", bound=Callable[..., Any])

class Terminated(KeyboardInterrupt):
    """SIGTERM raised as an interrupt, so that every ``except KeyboardInterrupt`` (the training loop's, which records
    where the run stopped and how to resume) handles it as it handles Ctrl-C."""

    signum = signal.SIGTERM


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Schedulers pre-empt jobs with SIGTERM, `dkp train --watch` stops its child with it and `kill` sends it by
    default; Python's default action kills the process on the spot (a run left saying "running"). Only the main
    thread may install signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def guarded(fn: F) -> F:
    """Turn a DkpError or an OSError into one line on stderr and exit code 2 (never a traceback for user mistakes or
    a full disk), and Ctrl-C or SIGTERM into one line and the shell's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with sigterm_as_interrupt():
                return fn(*args, **kwargs)
        except DkpError as err:
            typer.echo(f"dkp: error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None
        except OSError as err:  # no space, read-only, permission denied, a path that vanished: the user's to fix
            typer.echo(f"dkp: error: {os_error_text(err)}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as err:
            signum = int(getattr(err, "signum", signal.SIGINT))
            typer.echo(f"dkp: {'terminated' if signum == signal.SIGTERM else 'interrupted'}", err=True)
            raise typer.Exit(128 + signum) from None  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()
