"""The `?` screen: what every key does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]dkp watch[/b]: a live view of dkp training runs (read-only)

[b]↑ ↓[/b] / [b]n p[/b]  show another run
[b]c[/b]          compare: overlay the highlighted run's curves
           (press on a run to mark it, move to another run)
[b]m[/b]          chart: loss → edge weights → α → lr → images/s
[b]s[/b]          smoothing: raw → EMA 0.6 → 0.9 → 0.98
[b]l[/b]          linear / log scale
[b]o[/b]          overlays full screen (again to go back)
[b]r[/b]          re-read every run from the start
[b]?[/b]          this help          [b]q[/b]  quit

Status: [green]running[/], [cyan]finished[/], [red]failed[/] come from the run;
[yellow]stalled[/] = running but no metrics line for 10× the usual
interval (at least a minute)."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > #help { width: auto; max-width: 100%; height: auto; max-height: 100%;
                         border: round $accent; padding: 0 1; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP, id="help")
