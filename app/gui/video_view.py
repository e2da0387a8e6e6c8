"""The video area: the newest processed frame, scaled to fit, with the overlay drawn on top."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass

from PyQt6.QtCore import QPointF, QRectF, QSize
from PyQt6.QtGui import QColor, QPainter, QPaintEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

from app.gui.images import FrameImage, rgb_to_qimage
from app.gui.overlay import (
    ImageMapping,
    badge_area,
    badge_lines,
    paint_badge,
    paint_detections,
    paint_state,
    paint_zones,
)
from app.gui.theme import ERROR, WARNING
from engine.runtime.frames import Result

logger = logging.getLogger(__name__)

_BACKGROUND = QColor(12, 12, 14)


@dataclass(frozen=True)
class ViewState:
    """A state that replaces "live": shown over the dimmed last frame, or alone when there is none.

    Attributes:
        title: one short line, e.g. "Stream offline".
        detail: more context, e.g. "reconnecting in 4 s…" or an error message.
        kind: ``"info"``, ``"warning"`` or ``"error"``; sets the title's colour.
    """

    title: str
    detail: str = ""
    kind: str = "info"


class VideoView(QWidget):
    """Shows results; never decodes or runs anything, it only paints what it is given."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self._result: Result | None = None
        self._image: FrameImage | None = None
        self._shown_at: float | None = None
        self._state: ViewState | None = None
        self._keep: frozenset[str] = frozenset()

    def sizeHint(self) -> QSize:
        return QSize(960, 540)

    @property
    def result(self) -> Result | None:
        """The result on screen, if any."""
        return self._result

    @property
    def state(self) -> ViewState | None:
        """The non-live state shown, or None while the picture is live."""
        return self._state

    def show_result(self, result: Result) -> None:
        """Display a newly processed frame (repainted on the next paint cycle)."""
        self._result = result
        self._image = rgb_to_qimage(result.frame.image)
        self._shown_at = time.monotonic()
        self.update()

    def frame_age(self) -> float | None:
        """Seconds since the last frame arrived, or None before the first one."""
        return None if self._shown_at is None else time.monotonic() - self._shown_at

    def set_state(self, state: ViewState | None) -> None:
        """Show a state over the (dimmed) last frame; None returns to the live picture."""
        if state != self._state:
            self._state = state
            self.update()

    def clear(self) -> None:
        """Forget the last frame (a new source must not start with the old source's picture)."""
        self._result = self._image = self._shown_at = None
        self.update()

    def set_class_filter(self, names: Collection[str]) -> None:
        """Only draw these classes (all when empty)."""
        self._keep = frozenset(names)
        self.update()

    def badge_text(self) -> list[str]:
        """The lines of the exit badge as currently drawn (empty before the first frame)."""
        if self._result is None:
            return []
        return badge_lines(self._result.detections, self._result.latency_ms)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            area = QRectF(self.rect())
            painter.fillRect(area, _BACKGROUND)
            if self._image is not None and self._result is not None:
                mapping = ImageMapping.fit(self._image.width, self._image.height, area)
                painter.drawImage(mapping.target, self._image.image)
                det, latency = self._result.detections, self._result.latency_ms
                origin = mapping.target.topLeft() + QPointF(8, 8)
                if self._result.tracking is not None:
                    paint_zones(painter, self._result.tracking.zones, mapping)
                paint_detections(painter, det, mapping, self._keep, avoid=badge_area(det, latency, origin))
                paint_badge(painter, det, latency, origin)
                area = mapping.target
            if self._state is not None:
                color = {"error": ERROR.lighter(140), "warning": WARNING}.get(self._state.kind)
                paint_state(painter, area, self._state.title, self._state.detail,
                            dim=self._image is not None, color=color)
        finally:
            painter.end()
