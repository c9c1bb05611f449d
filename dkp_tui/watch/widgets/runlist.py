"""The run list: one line per run (name, role, status, step, last loss); the highlighted line is the shown run."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList

from dkp_tui.watch.format import run_row
from dkp_tui.watch.state import WatchState

STEP_W, LOSS_W, STATUS_W = 6, 7, 8
WIDE = 40  # below this the role column shrinks to one letter


def _fit_left(s: str, width: int) -> str:
    """Keep the end of a long run name (its leaf directory tells runs apart)."""
    return s if len(s) <= width else "…" + s[len(s) - width + 1 :]


def _columns(width: int) -> tuple[int, int]:
    role_w = 7 if width >= WIDE else 1
    name_w = max(width - STEP_W - LOSS_W - STATUS_W - role_w - 5, 4)
    return name_w, role_w


def header_line(width: int) -> Text:
    name_w, role_w = _columns(width)
    role = "role" if role_w > 1 else "r"
    return Text(
        f" {'run':<{name_w}} {role:<{role_w}} {'status':<{STATUS_W}} {'step':>{STEP_W}} {'loss':>{LOSS_W}}",
        style="bold",
        no_wrap=True,
    )


def row_line(state: WatchState, index: int, width: int) -> Text:
    """One fixed-width line; the name column takes what the other columns leave."""
    run = state.runs[index]
    compared = index == state.compare
    _, role, status, step, loss = run_row(run, state.clock(), compared)
    name_w, role_w = _columns(width)
    role = role if role_w > 1 else role[:1].upper()
    out = Text(no_wrap=True)
    out.append("◆" if compared else " ", style="yellow")
    out.append(_fit_left(run.name, name_w).ljust(name_w), style="yellow" if compared else "")
    out.append(" " + role[:role_w].ljust(role_w) + " ")
    out.append(status.plain[:STATUS_W].ljust(STATUS_W), style=status.style)
    out.append(" " + step.rjust(STEP_W)[-STEP_W:] + " " + loss[:LOSS_W].rjust(LOSS_W))
    return out


class RunList(OptionList):
    """Arrow keys move the highlight; the app shows the highlighted run."""

    DEFAULT_CSS = """
    RunList { height: 1fr; border: none; padding: 0; background: $surface; }
    RunList:focus { border: none; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._row_texts: list[Text] = []

    def sync(self, state: WatchState) -> None:
        """Make the options match the runs, touching only the lines that changed (keeps the highlight)."""
        width = max(self.scrollable_content_region.width, 30)
        lines = [row_line(state, i, width) for i in range(len(state.runs))]
        if len(lines) != len(self._row_texts):
            self.set_options(lines)
            if lines:
                self.highlighted = state.selected
        else:
            for i, (old, new) in enumerate(zip(self._row_texts, lines, strict=True)):
                if old != new:
                    self.replace_option_prompt_at_index(i, new)
            if lines and self.highlighted != state.selected:
                self.highlighted = state.selected
        self._row_texts = lines
