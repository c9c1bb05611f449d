"""Helpers shared by the CLI commands: error mapping, console, JSON output."""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from dkp_tui.errors import DkpError

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=True)  # progress and tables for people go to stderr; --json output goes to stdout


def guarded(fn: F) -> F:
    """Turn a DkpError into one line on stderr and exit code 2 (never a traceback for user mistakes)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DkpError as err:
            typer.echo(f"dkp: error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt as err:
            signum = int(getattr(err, "signum", signal.SIGINT))
            typer.echo(f"dkp: {'terminated' if signum == signal.SIGTERM else 'interrupted'}", err=True)
            raise typer.Exit(128 + signum) from None  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()
