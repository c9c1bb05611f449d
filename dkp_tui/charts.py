"""Small result charts (bar chart with error bars, per-seed scores) drawn with OpenCV: no plotting dependency.

They are figures for a README or a lab notebook, not an interactive plot: RGB uint8 arrays that
``dkp_tui.viz.save_png`` writes. Text is OpenCV's Hershey font, so labels are ASCII ("+/-", not "±").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (40, 40, 40)
GRID = (230, 230, 230)
# matplotlib's tab10, in its order (shared with `dkp sweep`'s plot so a variant keeps one colour per figure type)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) inside [lo, hi]."""
    span = hi - lo if hi > lo else 1.0
    raw = span / n
    mag = 10 ** np.floor(np.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(start, hi + step * 1e-6, step)]


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


ASCII = {"×": "x", "±": "+/-", "γ": "gamma", "λ": "lambda", "↓": "", "↑": "", "–": "-", "—": "-"}


def ascii_text(text: str) -> str:
    """What the Hershey font can draw (it prints '?' for anything else)."""
    for k, v in ASCII.items():
        text = text.replace(k, v)
    return text.encode("ascii", "replace").decode("ascii")


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45, color: tuple[int, ...] = INK,
          anchor: str = "left", thickness: int = 1, fit: int | None = None) -> None:
    """``anchor``: left | centre | right of the text's baseline at ``org``; ``fit``: shrink to this many pixels."""
    text = ascii_text(text)
    (w, _), _ = cv2.getTextSize(text, FONT, scale, thickness)
    if fit is not None and w > fit:
        scale *= fit / w
        (w, _), _ = cv2.getTextSize(text, FONT, scale, thickness)
    x = org[0] - (w // 2 if anchor == "centre" else w if anchor == "right" else 0)
    cv2.putText(img, text, (int(x), int(org[1])), FONT, scale, color, thickness, cv2.LINE_AA)


@dataclass
class _Axes:
    """A y axis over [lo, hi] with ticks and grid lines on a white canvas; x placement is the caller's."""

    img: np.ndarray
    left: int
    top: int
    right: int
    bottom: int
    lo: float
    hi: float

    @classmethod
    def make(cls, width: int, height: int, values: Sequence[float], title: str, ylabel: str,
             zero: bool) -> _Axes:
        """``zero``: start the axis at 0 (bars); otherwise fit the values (points)."""
        img = np.full((height, width, 3), 255, np.uint8)
        finite = [v for v in values if v is not None and math.isfinite(v)] or [0.0, 1.0]
        lo, hi = min(finite), max(finite)
        pad = 0.08 * (hi - lo) or max(abs(hi) * 0.05, 1e-3)
        lo = 0.0 if zero and lo >= 0 else lo - pad
        axes = cls(img, 70, 44, width - 20, height - 70, lo, hi + pad)
        _text(img, title, (width // 2, 26), 0.55, anchor="centre", fit=width - 20)
        for t in nice_ticks(axes.lo, axes.hi):
            y = axes.y(t)
            cv2.line(img, (axes.left, y), (axes.right, y), GRID, 1)
            _text(img, _fmt(t), (axes.left - 6, y + 4), 0.4, anchor="right")
        cv2.line(img, (axes.left, axes.top), (axes.left, axes.bottom), INK, 1)
        cv2.line(img, (axes.left, axes.bottom), (axes.right, axes.bottom), INK, 1)
        label = np.full((22, axes.bottom - axes.top, 3), 255, np.uint8)  # the y label, written then rotated
        _text(label, ylabel, (label.shape[1] // 2, 15), 0.42, anchor="centre", fit=label.shape[1] - 4)
        rotated = np.ascontiguousarray(np.rot90(label))
        img[axes.top:axes.top + rotated.shape[0], 6:6 + rotated.shape[1]] = rotated
        return axes

    def y(self, v: float) -> int:
        return int(round(self.bottom - (v - self.lo) / (self.hi - self.lo) * (self.bottom - self.top)))


def bar_chart(labels: Sequence[str], means: Sequence[float | None], stds: Sequence[float | None],
              title: str, ylabel: str, points: Sequence[Sequence[float | None]] | None = None,
              width: int = 640, height: int = 400) -> np.ndarray:
    """Bars of the means with +/- 1 std error bars (and each run's value as a dot when ``points`` is given)."""
    values = [m for m in means if m is not None] + [(m or 0) + (s or 0) for m, s in zip(means, stds, strict=True)]
    for pts in points or []:
        values += [p for p in pts if p is not None]
    ax = _Axes.make(width, height, values, title, ylabel, zero=True)
    n = max(len(labels), 1)
    slot = (ax.right - ax.left) / n
    for i, (label, m, s) in enumerate(zip(labels, means, stds, strict=True)):
        cx = int(ax.left + slot * (i + 0.5))
        half = int(slot * 0.3)
        colour = PALETTE[i % len(PALETTE)]
        if m is not None:
            cv2.rectangle(ax.img, (cx - half, ax.y(m)), (cx + half, ax.y(max(ax.lo, 0.0))), colour, -1)
            if s:
                top, bot = ax.y(m + s), ax.y(m - s)
                cv2.line(ax.img, (cx, top), (cx, bot), INK, 2)
                for yy in (top, bot):
                    cv2.line(ax.img, (cx - 8, yy), (cx + 8, yy), INK, 2)
            _text(ax.img, f"{m:.2f}" + (f" +/- {s:.2f}" if s else ""), (cx, ax.y(m + (s or 0)) - 8), 0.42,
                  anchor="centre")
        for j, p in enumerate((points[i] if points else None) or []):
            if p is not None:
                cv2.circle(ax.img, (cx + int((j - (len(points[i]) - 1) / 2) * 6), ax.y(p)), 3, INK, -1, cv2.LINE_AA)
        _text(ax.img, label, (cx, ax.bottom + 22), 0.42, anchor="centre")
    return ax.img


def seed_plot(series: Sequence[tuple[str, Sequence[int], Sequence[float | None]]], title: str, ylabel: str,
              width: int = 640, height: int = 400, xlabel: str = "seed",
              tick_labels: Sequence[str] | None = None) -> np.ndarray:
    """One line of markers per series: score against seed, so an outlier seed stands out at once (or against any
    evenly spaced steps, named by ``tick_labels``, e.g. the shots curve's label counts)."""
    values = [v for _, _, vs in series for v in vs if v is not None]
    seeds = sorted({s for _, ss, _ in series for s in ss}) or [0]
    ax = _Axes.make(width, height, values, title, ylabel, zero=False)
    span = max(seeds[-1] - seeds[0], 1)
    inset = 30

    def x(seed: int) -> int:
        if len(seeds) == 1:
            return (ax.left + ax.right) // 2
        return int(ax.left + inset + (seed - seeds[0]) / span * (ax.right - ax.left - 2 * inset))

    for k, s in enumerate(seeds):
        cv2.line(ax.img, (x(s), ax.bottom), (x(s), ax.bottom + 4), INK, 1)
        tick = tick_labels[k] if tick_labels is not None and k < len(tick_labels) else str(s)
        _text(ax.img, tick, (x(s), ax.bottom + 18), 0.4, anchor="centre")
    _text(ax.img, xlabel, ((ax.left + ax.right) // 2, ax.bottom + 36), 0.42, anchor="centre")
    for i, (label, ss, vs) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        pts = [(x(s), ax.y(v)) for s, v in zip(ss, vs, strict=True) if v is not None]
        for p, q in zip(pts, pts[1:], strict=False):
            cv2.line(ax.img, p, q, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(ax.img, p, 5, colour, -1, cv2.LINE_AA)
        lx = ax.left + 10 + i * ((ax.right - ax.left) // max(len(series), 1))
        cv2.circle(ax.img, (lx + 5, height - 14), 5, colour, -1, cv2.LINE_AA)
        _text(ax.img, label, (lx + 16, height - 10), 0.42)
    return ax.img


def wrap(text: str, limit: int = 18) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= limit:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def label_rows(grid: np.ndarray, labels: Sequence[str], row_height: int, pad: int = 2, width: int = 170) -> np.ndarray:
    """A white column of row labels to the left of an image grid (one label per row of tiles)."""
    column = np.full((grid.shape[0], width, 3), 255, np.uint8)
    for r, label in enumerate(labels):
        centre = pad + r * (row_height + pad) + row_height // 2
        lines = wrap(label)
        for k, line in enumerate(lines):
            _text(column, line, (width - 8, int(centre + 5 + (k - (len(lines) - 1) / 2) * 18)), 0.45,
                  anchor="right")
    return np.concatenate([column, grid], axis=1)
