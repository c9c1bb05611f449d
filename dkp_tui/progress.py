"""The progress bars people see on stderr, built one way for every stage (prepare, depth, train, eval, infer...).

``progress_bar`` covers the common case, a context manager yielding ``advance(n)``; ``new_progress`` gives the
``rich.progress.Progress`` itself to a display that keeps several tasks or its own fields (training, job lists).
Columns: description, bar, done/total, then whatever a caller asks for (a rate, text fields), the elapsed time and
the ETA. Importing rich is deferred until a bar is drawn, so a quiet run never pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def new_progress(*, console: Console | None = None, unit: str = "", rate: str = "", fields: Sequence[str] = (),
                 elapsed: bool = True, eta: bool = True, transient: bool = False) -> Progress:
    """A not yet started ``Progress`` on ``console`` (default: the shared stderr console).

    ``unit`` follows done/total ("images"); ``rate`` adds a rate column in that unit per second ("img");
    ``fields`` are rich text templates reading ``task.fields`` ("loss {task.fields[loss]}").
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items/s over the work done in this process (work resumed from disk does not inflate it)."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:7.1f} {rate}/s" if speed else f"    ... {rate}/s", style="cyan")

    if console is None:
        from dkp_tui.console import console as shared

        console = shared
    columns: list[Any] = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    if rate:
        columns.append(RateColumn())
    columns += [TextColumn(f) for f in fields]
    if elapsed:
        columns.append(TimeElapsedColumn())
    if eta:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=console, transient=transient)


@contextmanager
def progress_bar(description: str, total: int | None, *, enabled: bool = True, **options: Any
                 ) -> Iterator[Callable[..., None]]:
    """Yields ``advance(n=1)``: one bar of ``total`` steps (None: unknown), or nothing when not ``enabled`` or
    there is nothing to do. ``options`` go to ``new_progress``."""
    if not enabled or (total is not None and total <= 0):
        yield lambda n=1: None
        return
    with new_progress(**options) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
