"""The `dkp watch` Textual app: layout, key bindings and the polling loop that feeds the widgets.

One timer drives everything: each tick tails the shown (and compared) run's ``metrics.jsonl``, now and then the
other runs, the system sampler and run discovery, then pushes new text to the widgets that changed. Nothing here
writes to a run directory, and nothing imports torch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, OptionList, Static

from dkp_tui.watch.braille import legend
from dkp_tui.watch.format import chart_series, chart_title, metrics_text, status_line, system_text
from dkp_tui.watch.once import snapshot as _snapshot
from dkp_tui.watch.state import RunModel, WatchState
from dkp_tui.watch.sysstats import Sampler, SysStats, SystemSampler
from dkp_tui.watch.widgets.curves import CurveChart
from dkp_tui.watch.widgets.help import HelpScreen

# textual-image asks the terminal about graphics support when imported, which must happen before App.run():
# importing this module (as run_dashboard's caller does) takes care of it
from dkp_tui.watch.widgets.overlays import OverlayPanel
from dkp_tui.watch.widgets.runlist import RunList, header_line

POLL_S = (
    1.0  # refresh period; 10 lines/s then arrive 10 at a time. 2 Hz doubles the dashboard's CPU for nothing
)
OTHERS_EVERY = 2  # ticks between polls of runs that are not shown
SYSTEM_EVERY = 1  # ticks between system samples
DISCOVER_EVERY = 10  # ticks between scans for new runs


class WatchApp(App[None]):
    """Dashboard over one run or every run under a directory.

    ``clock``, ``sampler`` and ``image_mode`` are injectable so tests and snapshots are deterministic; a huge
    ``poll_interval`` plus explicit ``tick()`` calls lets a test step the dashboard by hand.
    """

    # status line; left column (runs, metrics, system), right column (curves over overlays); footer.
    CSS_PATH = "app.tcss"  # beside this module, shipped as package data (pyproject)
    TITLE = "dkp watch"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("m", "metric", "chart"),
        Binding("s", "smoothing", "smooth"),
        Binding("l", "log_scale", "log"),
        Binding("c", "compare", "compare"),
        Binding("o", "overlays", "images"),
        Binding("n", "next_run", "next run", show=False),
        Binding("p", "prev_run", "previous run", show=False),
        Binding("r", "reload", "reload", show=False),
    ]

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        sampler: Sampler | None = None,
        poll_interval: float = POLL_S,
        image_mode: str = "auto",
    ) -> None:
        super().__init__()
        self.state = WatchState(Path(root), clock)
        self.clock = clock
        self._sampler = sampler
        self.poll_interval = poll_interval
        self.image_mode = image_mode
        self.stats: SysStats | None = None
        self.ticks = 0
        self._chart_key: tuple[object, ...] | None = None

    # -- layout --------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                with Vertical(id="runs-box"):
                    yield Static(id="runs-header")
                    yield RunList(id="runs")
                yield Static(id="metrics")
                yield Static(id="system")
            with Vertical(id="right"):
                yield CurveChart(id="chart")
                yield OverlayPanel(self.image_mode, id="overlays")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs-box").border_title = "runs"
        self.query_one("#metrics").border_title = "metrics"
        self.query_one("#system").border_title = "system"
        if self._sampler is None:
            self._sampler = SystemSampler()
        self.query_one(RunList).focus()
        self.tick()
        self.set_interval(self.poll_interval, self.tick)

    def on_unmount(self) -> None:
        close = getattr(self._sampler, "close", None)
        if close is not None:
            close()

    # -- the loop ------------------------------------------------------------------------------------
    def tick(self) -> None:
        """One refresh: read what is new, then update the widgets (cheap when nothing changed)."""
        if self.ticks % DISCOVER_EVERY == 0 and self.ticks:
            self.state.discover()
        self.state.poll(everything=self.ticks % OTHERS_EVERY == 0)
        if self.ticks % SYSTEM_EVERY == 0 and self._sampler is not None:
            self.stats = self._sampler()
        self.ticks += 1
        self.refresh_views()

    def refresh_views(self) -> None:
        now = self.clock()
        state = self.state
        run = state.current
        self._set("#status", status_line(state, now))
        self._set("#metrics", metrics_text(run, now))
        self._set("#system", system_text(self.stats))
        runs = self.query_one(RunList)
        self._set("#runs-header", header_line(max(runs.scrollable_content_region.width, 30)))
        runs.sync(state)
        compared = state.compared
        key = (
            state.selected,
            run.version if run else -1,
            state.compare,
            compared.version if compared else -1,
            state.group,
            state.smoothing,
            state.log_scale,
        )
        chart = self.query_one(CurveChart)
        if key != self._chart_key:
            self._chart_key = key
            series = chart_series(state)
            chart.border_title = chart_title(state)
            chart.border_subtitle = legend(series[::-1])  # drawn last = listed first
            chart.set_data(series, state.log_scale, key)
        overlays = self.query_one(OverlayPanel)
        main, teacher, step = run.samples() if run else (None, None, 0)
        overlays.show(main, teacher, step, run.role if run else "?")
        title = f"samples · step {step}" if main else "samples"
        if overlays.border_title != title:
            overlays.border_title = title

    def _set(self, selector: str, text: Text) -> None:
        """Update a Static only when its text changed, so an idle dashboard repaints nothing."""
        widget = self.query_one(selector, Static)
        old: Text | None = getattr(widget, "_dkp_text", None)
        if old != text:
            widget._dkp_text = text  # type: ignore[attr-defined]
            # the same number of lines keeps the size: repaint only, skip the (costly) layout pass
            widget.update(text, layout=old is None or old.plain.count("\n") != text.plain.count("\n"))

    # -- events and actions --------------------------------------------------------------------------
    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index != self.state.selected:
            self.state.select(event.option_index)
            self.state.poll(everything=False)
            self.refresh_views()

    def on_resize(self) -> None:
        self.call_after_refresh(self.refresh_views)

    def _move(self, delta: int) -> None:
        if self.state.runs:
            self.state.select((self.state.selected + delta) % len(self.state.runs))
            self.state.poll(everything=False)
            self.refresh_views()

    def action_next_run(self) -> None:
        self._move(1)

    def action_prev_run(self) -> None:
        self._move(-1)

    def action_compare(self) -> None:
        runs = self.query_one(RunList)
        self.state.toggle_compare(runs.highlighted if runs.highlighted is not None else None)
        self.state.poll(everything=False)
        self.refresh_views()

    def action_metric(self) -> None:
        self.state.cycle_group()
        self.refresh_views()

    def action_smoothing(self) -> None:
        self.state.cycle_smoothing()
        self.refresh_views()

    def action_log_scale(self) -> None:
        self.state.log_scale = not self.state.log_scale
        self.refresh_views()

    def action_overlays(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
        else:
            self.screen.maximize(self.query_one(OverlayPanel), container=False)

    def action_reload(self) -> None:
        self.state.runs = [RunModel(r.path, r.name) for r in self.state.runs]
        self.state.discover()
        self.state.poll()
        self.refresh_views()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


def run_dashboard(path: Path, image_mode: str = "auto") -> None:
    """Open the dashboard on a run directory or a directory of runs (blocks until the user quits)."""
    WatchApp(path, image_mode=image_mode).run()


def snapshot(path: Path, width: int = 100) -> str:
    """One plain-text snapshot of the runs at ``path`` (what ``dkp watch --once`` prints)."""
    return _snapshot(path, width=width)
