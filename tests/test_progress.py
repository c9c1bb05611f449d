"""The one progress helper: silent when disabled or idle, and the columns a caller asks for."""

from __future__ import annotations

import io

from rich.console import Console

from dkp_tui.progress import new_progress, progress_bar


def _console(buf: io.StringIO) -> Console:
    return Console(file=buf, width=120, force_terminal=False, color_system=None)


def test_a_disabled_or_empty_bar_draws_nothing():
    buf = io.StringIO()
    for enabled, total in ((False, 10), (True, 0)):
        with progress_bar("idle", total, enabled=enabled, console=_console(buf)) as advance:
            advance(3)
    assert buf.getvalue() == ""


def test_a_bar_counts_what_was_advanced_with_its_unit_and_rate():
    buf = io.StringIO()
    with progress_bar("depth", 5, console=_console(buf), unit="images", rate="img") as advance:
        advance(2)
        advance()
    text = buf.getvalue()
    assert "depth" in text and "3/5 images" in text and "img/s" in text and "ETA" in text


def test_fields_are_shown_and_eta_can_be_left_out():
    buf = io.StringIO()
    with new_progress(console=_console(buf), fields=("loss {task.fields[loss]}",), eta=False) as progress:
        task = progress.add_task("train", total=4, loss="-")
        progress.update(task, completed=4, loss="0.1234")
    text = buf.getvalue()
    assert "4/4" in text and "loss 0.1234" in text and "ETA" not in text
