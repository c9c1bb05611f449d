"""A line chart drawn with Unicode braille (2×4 dots per cell): pure functions returning rich ``Text`` lines.

Self-drawn rather than a plotting library so that it costs well under a millisecond per frame, needs no extra
dependency, and renders identically in the dashboard, in ``dkp watch --once`` and in snapshot tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.text import Text

# dot bit for (column 0..1, row 0..3) inside one braille cell
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
AXIS_STYLE = "#808080"


@dataclass
class PlotSeries:
    label: str
    x: np.ndarray
    y: np.ndarray
    color: str
    group: str = ""  # legend heading shared by consecutive series (the compared run's name)


def fmt_value(v: float) -> str:
    """Short axis label: 3 significant digits, scientific only when needed."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    return f"{v:.3g}"


def fmt_step(v: float) -> str:
    v = float(v)
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:.0f}"


def _column_means(
    x: np.ndarray, y: np.ndarray, x0: float, x1: float, ncols: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the points falling in each dot column; returns (columns with data, their means)."""
    cols = np.clip(np.rint((x - x0) / (x1 - x0) * (ncols - 1)).astype(np.int64), 0, ncols - 1)
    counts = np.bincount(cols, minlength=ncols)
    sums = np.bincount(cols, weights=y, minlength=ncols)
    present = np.nonzero(counts)[0]
    return present, sums[present] / counts[present]


def render_plot(series: list[PlotSeries], width: int, height: int, log: bool = False) -> list[Text]:
    """``height`` lines of ``width`` cells: y labels on the left, braille plot, step labels below.

    Non-finite points are dropped, and so are values <= 0 on a log scale. Later series draw over earlier ones.
    """
    prepared: list[tuple[PlotSeries, np.ndarray, np.ndarray]] = []
    for s in series:
        x, y = np.asarray(s.x, dtype=np.float64), np.asarray(s.y, dtype=np.float64)
        keep = np.isfinite(x) & np.isfinite(y)
        if log:
            keep &= y > 0
        x, y = x[keep], y[keep]
        if log:
            y = np.log10(y)
        if len(x):
            prepared.append((s, x, y))
    if not prepared:
        return [Text("no data yet", style=AXIS_STYLE)] + [Text("")] * max(height - 1, 0)
    ymin = min(float(y.min()) for _, _, y in prepared)
    ymax = max(float(y.max()) for _, _, y in prepared)
    if ymax - ymin < 1e-12 * max(1.0, abs(ymax)):
        pad = 0.5 if log else (abs(ymax) * 0.05 or 1.0)
        ymin, ymax = ymin - pad, ymax + pad
    x0 = min(float(x.min()) for _, x, _ in prepared)
    x1 = max(float(x.max()) for _, x, _ in prepared)
    if x1 <= x0:
        x1 = x0 + 1.0

    def label(v: float) -> str:
        return fmt_value(10**v if log else v)

    plot_h = max(height - 1, 1)
    ylabels = {0: label(ymax), plot_h - 1: label(ymin)}
    if plot_h >= 5:
        ylabels[(plot_h - 1) // 2] = label(ymax - (ymax - ymin) * ((plot_h - 1) // 2) / (plot_h - 1))
    lw = max(len(t) for t in ylabels.values()) + 1
    plot_w = width - lw
    if plot_w < 4 or height < 2:
        return [Text("(too small)", style=AXIS_STYLE)]

    ncols, nrows = plot_w * 2, plot_h * 4
    bits = [[0] * plot_w for _ in range(plot_h)]
    color: list[list[str | None]] = [[None] * plot_w for _ in range(plot_h)]

    def dot(px: int, py: int, c: str) -> None:
        cx, cy = px >> 1, py >> 2
        bits[cy][cx] |= _DOTS[px & 1][py & 3]
        color[cy][cx] = c

    def row_of(v: float) -> int:
        return int(round((ymax - v) / (ymax - ymin) * (nrows - 1)))

    for s, x, y in prepared:
        cols, means = _column_means(x, y, x0, x1, ncols)
        prev_c, prev_r = -1, -1
        for c, m in zip(cols.tolist(), means.tolist(), strict=True):
            r = row_of(m)
            if prev_c < 0:
                dot(c, r, s.color)
            else:
                # join to the previous column: interpolate across gaps, a vertical run in each column
                for cc in range(prev_c + 1, c + 1):
                    ra = int(round(prev_r + (r - prev_r) * (cc - 1 - prev_c) / (c - prev_c)))
                    rb = int(round(prev_r + (r - prev_r) * (cc - prev_c) / (c - prev_c)))
                    for ry in range(min(ra, rb), max(ra, rb) + 1):
                        dot(cc, ry, s.color)
            prev_c, prev_r = c, r

    lines: list[Text] = []
    for cy in range(plot_h):
        line = Text(
            ylabels.get(cy, "").rjust(lw - 1) + ("┤" if cy in ylabels else "│"),
            style=AXIS_STYLE,
            no_wrap=True,
        )
        run_chars: list[str] = []
        run_color: str | None = None
        for cx in range(plot_w):
            c = color[cy][cx]
            if c != run_color and run_chars:
                line.append("".join(run_chars), style=run_color or "")
                run_chars = []
            run_color = c
            run_chars.append(chr(0x2800 + bits[cy][cx]) if bits[cy][cx] else " ")
        if run_chars:
            line.append("".join(run_chars), style=run_color or "")
        lines.append(line)
    left, right = fmt_step(x0), fmt_step(x1)
    axis = " " * lw + left + right.rjust(max(plot_w - len(left), len(right) + 1))
    lines.append(Text(axis[:width], style=AXIS_STYLE, no_wrap=True))
    return lines


def legend(series: list[PlotSeries]) -> Text:
    """``━total ━rec ━kd vs teacher ━total ━rec``: a group's name is written once, before its first series."""
    out = Text(no_wrap=True, overflow="ellipsis")
    group = ""
    for i, s in enumerate(series):
        if i:
            out.append(" ")
        if s.group and s.group != group:
            out.append(f"vs {s.group} ", style="bold")
        group = s.group
        out.append("━", style=s.color)
        out.append(s.label)
    return out
