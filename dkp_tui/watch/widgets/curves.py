"""The curve chart: a braille line chart of one metric group, redrawn only when its data or size changed."""

from __future__ import annotations

from collections.abc import Hashable

from rich.text import Text
from textual.widget import Widget

from dkp_tui.watch.braille import PlotSeries, render_plot


class CurveChart(Widget):
    DEFAULT_CSS = """
    CurveChart { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._series: list[PlotSeries] = []
        self._log = False
        self._key: Hashable = None
        self._cached_key: Hashable = object()
        self._cached = Text("")

    def set_data(self, series: list[PlotSeries], log: bool, key: Hashable) -> None:
        """``key`` changes whenever the data or the view changed; the same key skips the redraw."""
        if key == self._key:
            return
        self._series, self._log, self._key = series, log, key
        self.refresh()

    def render(self) -> Text:
        w, h = self.content_size
        key = (w, h, self._key)
        if key != self._cached_key:
            self._cached_key = key
            self._cached = (
                Text("\n").join(render_plot(self._series, w, h, log=self._log)) if w and h else Text("")
            )
        return self._cached
