"""The newest keypoint-overlay grid(s) of a run, drawn in the terminal; teacher and student side by side.

Real pixels where the terminal speaks a graphics protocol (kitty, sixel, iTerm through textual-image), colour
half-blocks everywhere else. ``textual_image.widget`` queries the terminal when imported, which only works before
Textual owns the terminal: importing this module before ``App.run()`` does that.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Static
from textual_image.renderable import Image as AutoRenderable
from textual_image.renderable.sixel import Image as SixelRenderable
from textual_image.renderable.tgp import Image as TGPRenderable
from textual_image.widget import HalfcellImage
from textual_image.widget import Image as AutoImage

ImageWidget = type[HalfcellImage] | type[AutoImage]


def image_widget_class(mode: str) -> tuple[ImageWidget, float]:
    """(widget class, cell height / cell width in that widget's pixels) for ``mode`` auto | halfcell.

    Half-blocks put two square pixels in one cell, so a cell is exactly 1:2; a graphics protocol draws real pixels,
    so the terminal's own cell size decides.
    """
    if mode == "auto" and AutoRenderable in (SixelRenderable, TGPRenderable):
        try:
            from textual_image.widget import get_cell_size

            cell = get_cell_size()
            return AutoImage, cell.height / max(cell.width, 1)
        except Exception:  # noqa: BLE001 - a terminal that cannot say: assume the usual 1:2
            return AutoImage, 2.0
    return HalfcellImage, 2.0


def fit_cells(img_w: int, img_h: int, max_w: int, max_h: int, cell_aspect: float = 2.0) -> tuple[int, int]:
    """Largest (columns, rows) inside (max_w, max_h) that keeps the image's aspect ratio on cells ``cell_aspect`` tall."""
    if img_w <= 0 or img_h <= 0 or max_w <= 0 or max_h <= 0:
        return 0, 0
    w = max_w
    h = w * img_h / img_w / cell_aspect
    if h > max_h:
        h = max_h
        w = h * cell_aspect * img_w / img_h
    return max(1, int(w)), max(1, int(round(h)))


def load_rgb(path: Path) -> PILImage.Image | None:
    """The image fully read into memory (no file handle kept open on the run directory), or None if unreadable."""
    try:
        with PILImage.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, PILImage.DecompressionBombError):
        return None


class SamplePane(Vertical):
    """A caption and one image."""

    DEFAULT_CSS = """
    SamplePane { width: 1fr; height: 1fr; }
    SamplePane > .caption { height: 1; color: $text-muted; }
    """

    def __init__(self, caption: str, widget_cls: ImageWidget, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.caption = Static(caption, classes="caption")
        self.image = widget_cls()
        self._source: tuple[str, int, int] | None = None
        self._img_size: tuple[int, int] = (0, 0)
        self._fitted: tuple[int, int] = (-1, -1)
        self._caption_text = caption
        self._caption_error = False

    def compose(self) -> ComposeResult:
        yield self.caption
        yield self.image

    def load(self, path: Path | None) -> bool:
        """Load ``path`` unless it is the image shown already (same name, mtime and size); True if it changed."""
        if path is None:
            if self._source is None:
                return False
            self._source = None
            self.image.image = None
            return True
        try:
            st = path.stat()
        except OSError:
            return False
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key == self._source:
            return False
        img = load_rgb(path)
        self._source = key
        if img is None:
            self.caption.update(f"unreadable: {path.name}")
            self._caption_error = True
            return False
        if self._caption_error:
            self._caption_error = False
            self.caption.update(self._caption_text)
        self._img_size = img.size
        self.image.image = img
        return True

    def set_caption(self, text: str) -> None:
        self._caption_text = text
        if not self._caption_error:
            self.caption.update(text)

    @property
    def image_size(self) -> tuple[int, int]:
        return self._img_size

    def fit(self, width: int, height: int, cell_aspect: float) -> None:
        w, h = fit_cells(self._img_size[0], self._img_size[1], width, height - 1, cell_aspect)
        if (w, h) != self._fitted:
            self._fitted = (w, h)
            self.image.styles.width = w
            self.image.styles.height = h


class OverlayPanel(Widget):
    """Student (or teacher run) grid on the left, the teacher's grid of the same step on the right when present."""

    ALLOW_MAXIMIZE = True
    DEFAULT_CSS = """
    OverlayPanel { height: 1fr; }
    OverlayPanel > Horizontal { height: 1fr; }
    OverlayPanel .empty { color: $text-muted; }
    """

    def __init__(self, image_mode: str = "auto", *, id: str | None = None) -> None:
        super().__init__(id=id)
        widget_cls, self.cell_aspect = image_widget_class(image_mode)
        self.main = SamplePane("", widget_cls, id="sample-main")
        self.teacher = SamplePane("teacher (depth)", widget_cls, id="sample-teacher")
        self.empty = Static("no samples yet", classes="empty")
        self.step = 0
        self._shown: tuple[bool, bool, str] | None = None

    def compose(self) -> ComposeResult:
        yield self.empty
        with Horizontal(id="panes"):
            yield self.main
            yield self.teacher

    def on_mount(self) -> None:
        self.main.display = self.teacher.display = False

    def show(self, main: Path | None, teacher: Path | None, step: int, role: str) -> None:
        """Called every tick: touches the widgets only when the shown files changed (any update repaints)."""
        self.step = step
        caption = "teacher (depth)" if role == "teacher" else "student (RGB)"
        shown = (main is not None, teacher is not None, caption)
        if shown != self._shown:
            self._shown = shown
            self.empty.display = main is None
            self.main.display = main is not None
            self.teacher.display = teacher is not None
            self.main.set_caption(caption)
        changed = self.main.load(main)
        changed |= self.teacher.load(teacher)
        if changed:
            self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """Side by side, or one above the other when that draws the images larger (a tall, maximised panel)."""
        width, height = self.content_size
        panes = [p for p in (self.main, self.teacher) if p.display]
        if not panes:
            return
        stacked = False
        if len(panes) == 2:
            iw, ih = self.main.image_size
            side = fit_cells(iw, ih, (width - 1) // 2, height - 1, self.cell_aspect)
            above = fit_cells(iw, ih, width, height // 2 - 1, self.cell_aspect)
            stacked = above[0] * above[1] > side[0] * side[1]
        box = self.query_one("#panes", Horizontal)
        layout = "vertical" if stacked else "horizontal"
        if box.styles.layout is None or box.styles.layout.name != layout:
            box.styles.layout = layout
            self.teacher.styles.margin = (0, 0, 0, 0) if stacked else (0, 0, 0, 1)
        for p in panes:
            if stacked:
                p.fit(width, height // 2, self.cell_aspect)
            else:
                p.fit((width - (len(panes) - 1)) // len(panes), height, self.cell_aspect)
