"""QPainter drawing on top of the video: boxes and labels, zones with their counts, the exit badge,
the offline state.

Everything is drawn in widget coordinates at a fixed on-screen size, so labels stay readable
whatever the video's resolution and the window's size.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen, QPolygonF

from app.gui.theme import class_qcolor, exit_color
from engine.detections import Detections
from engine.render import Rect, badge_lines, place_label
from engine.tracking.state import ZoneState

logger = logging.getLogger(__name__)

LABEL_POINT_SIZE = 9.0
BADGE_POINT_SIZE = 10.0
STATE_POINT_SIZE = 16.0
_LABEL_TEXT = QColor(15, 15, 15)
_BADGE_BACKGROUND = QColor(0, 0, 0, 190)
_DIM = QColor(0, 0, 0, 185)
_ZONE = QColor(255, 220, 60)
_ZONE_FILL = QColor(255, 220, 60, 28)


@dataclass(frozen=True)
class ImageMapping:
    """Where a picture is drawn inside a widget: its on-screen rectangle and scale factor."""

    target: QRectF
    scale: float

    @classmethod
    def fit(cls, image_width: int, image_height: int, area: QRectF) -> ImageMapping:
        """The largest rectangle of the image's aspect ratio that fits ``area``, centred."""
        if image_width <= 0 or image_height <= 0:
            return cls(QRectF(area), 1.0)
        scale = min(area.width() / image_width, area.height() / image_height)
        width, height = image_width * scale, image_height * scale
        left = area.left() + (area.width() - width) / 2
        top = area.top() + (area.height() - height) / 2
        return cls(QRectF(left, top, width, height), scale)

    def point(self, x: float, y: float) -> QPointF:
        """A point in image pixels, in widget coordinates."""
        origin = self.target.topLeft()
        return QPointF(origin.x() + x * self.scale, origin.y() + y * self.scale)

    def box(self, x1: float, y1: float, x2: float, y2: float) -> QRectF:
        """An ``x1, y1, x2, y2`` box in image pixels, in widget coordinates."""
        origin = self.target.topLeft()
        return QRectF(origin.x() + x1 * self.scale, origin.y() + y1 * self.scale,
                      (x2 - x1) * self.scale, (y2 - y1) * self.scale)


def _font(point_size: float, bold: bool = False) -> QFont:
    font = QFont()
    font.setPointSizeF(point_size)
    font.setBold(bold)
    return font


def paint_detections(painter: QPainter, det: Detections, mapping: ImageMapping,
                     keep: Collection[str] | None = None, avoid: QRectF | None = None) -> list[QRectF]:
    """Boxes in their class colours with ``name #12 0.87`` labels (``name 0.87`` without a track);
    ``keep`` limits the classes shown. Returns where the labels went.

    Every box is drawn before any label, so that no box line crosses a label. Labels keep clear
    of each other and of ``avoid`` (the badge), as :func:`label_rect` places them.
    """
    font = _font(LABEL_POINT_SIZE, bold=True)
    metrics = QFontMetricsF(font)
    painter.setFont(font)
    shown = [(mapping.box(*(float(v) for v in box)), class_qcolor(int(class_id)), caption)
             for box, class_id, label, caption in zip(det.boxes, det.class_ids, det.labels, det.captions())
             if not keep or label in keep]
    painter.setBrush(Qt.BrushStyle.NoBrush)
    for rect, color, _ in shown:
        painter.setPen(QPen(color, 2.0))
        painter.drawRect(rect)
    taken: list[QRectF] = []  # labels drawn so far: crowded scenes must not stack them
    for rect, color, caption in shown:
        taken.append(_paint_label(painter, caption, rect, color, metrics, mapping.target, avoid, taken))
    return taken


def paint_zones(painter: QPainter, zones: Sequence[ZoneState], mapping: ImageMapping) -> None:
    """Each zone's outline (a polygon, lightly filled, or a line) and its counts beside its first point."""
    font = _font(LABEL_POINT_SIZE, bold=True)
    metrics = QFontMetricsF(font)
    painter.setFont(font)
    for zone in zones:
        points = [mapping.point(x, y) for x, y in zone.points]
        painter.setPen(QPen(_ZONE, 2.0, Qt.PenStyle.DashLine))
        if zone.kind == "polygon":
            painter.setBrush(_ZONE_FILL)
            painter.drawPolygon(QPolygonF(points))
        else:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawLine(points[0], points[1])
        text = zone.summary()
        anchor = min(points, key=lambda p: (p.y(), p.x()))
        width, height = metrics.horizontalAdvance(text) + 8, metrics.height() + 2
        left = min(max(anchor.x(), mapping.target.left()), mapping.target.right() - width)
        top = min(max(anchor.y() + 2, mapping.target.top()), mapping.target.bottom() - height)
        rect = QRectF(left, top, width, height)
        painter.fillRect(rect, _BADGE_BACKGROUND)
        painter.setPen(_ZONE)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)


def label_rect(width: float, height: float, box: QRectF, bounds: QRectF, avoid: QRectF | None = None,
               taken: Sequence[QRectF] = ()) -> QRectF:
    """Where a ``width`` x ``height`` label of ``box`` goes, within ``bounds``: the recordings' rule
    (:func:`engine.render.place_label`) in widget coordinates."""
    left, top, right, bottom = place_label(width, height, _rect(box), _rect(bounds),
                                           None if avoid is None else _rect(avoid), [_rect(t) for t in taken])
    return QRectF(left, top, right - left, bottom - top)


def _rect(rect: QRectF) -> Rect:
    return rect.left(), rect.top(), rect.right(), rect.bottom()


def _paint_label(painter: QPainter, text: str, box: QRectF, color: QColor, metrics: QFontMetricsF,
                 bounds: QRectF, avoid: QRectF | None, taken: Sequence[QRectF]) -> QRectF:
    label = label_rect(metrics.horizontalAdvance(text) + 8, metrics.height() + 2, box, bounds, avoid, taken)
    painter.fillRect(label, color)
    painter.setPen(_LABEL_TEXT)
    painter.drawText(label, Qt.AlignmentFlag.AlignCenter, text)
    return label


@dataclass(frozen=True)
class _BadgeLayout:
    exit_text: str
    detail_text: str
    pill: QRectF
    body: QRectF

    @property
    def area(self) -> QRectF:
        return self.pill.united(self.body)


def _badge_fonts() -> tuple[QFont, QFont]:
    return _font(BADGE_POINT_SIZE + 1, bold=True), _font(BADGE_POINT_SIZE)


def _badge_layout(det: Detections, latency_ms: float | None, origin: QPointF) -> _BadgeLayout:
    exit_text, *details = badge_lines(det, latency_ms)
    detail_text = "  ·  ".join(details)
    title_font, body_font = _badge_fonts()
    title_metrics, body_metrics = QFontMetricsF(title_font), QFontMetricsF(body_font)
    pad = 7.0
    height = max(title_metrics.height(), body_metrics.height()) + 6
    pill = QRectF(origin.x(), origin.y(), title_metrics.horizontalAdvance(exit_text) + 2 * pad, height)
    body = QRectF(pill.right(), origin.y(), body_metrics.horizontalAdvance(detail_text) + 2 * pad, height)
    return _BadgeLayout(exit_text, detail_text, pill, body)


def badge_area(det: Detections, latency_ms: float | None, origin: QPointF) -> QRectF:
    """Where :func:`paint_badge` will draw, so that labels can keep out of the way."""
    return _badge_layout(det, latency_ms, origin).area


def paint_badge(painter: QPainter, det: Detections, latency_ms: float | None, origin: QPointF) -> QRectF:
    """The per-frame badge, one line with its top-left corner at ``origin``; returns its area.

    One compact line (a pill in the exit's colour, then the routing and latency) hides as
    little of the picture as possible.
    """
    layout = _badge_layout(det, latency_ms, origin)
    exit_text, detail_text, pill, body = layout.exit_text, layout.detail_text, layout.pill, layout.body
    title_font, body_font = _badge_fonts()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(_BADGE_BACKGROUND)
    painter.drawRoundedRect(pill.united(body), 4, 4)
    painter.setBrush(exit_color(det.exit))
    painter.drawRoundedRect(pill, 4, 4)
    painter.setFont(title_font)
    painter.setPen(_LABEL_TEXT)
    painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, exit_text)
    painter.setFont(body_font)
    painter.setPen(QColor(240, 240, 240))
    painter.drawText(body, Qt.AlignmentFlag.AlignCenter, detail_text)
    return pill.united(body)


def paint_state(painter: QPainter, area: QRectF, title: str, detail: str = "", dim: bool = True,
                color: QColor | None = None) -> None:
    """Dim ``area`` and write a state (e.g. "Stream offline") across its middle."""
    if dim:
        painter.fillRect(area, _DIM)
    title_font, detail_font = _font(STATE_POINT_SIZE, bold=True), _font(STATE_POINT_SIZE * 0.7)
    flags = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap
    margin = 16.0
    width = max(area.width() - 2 * margin, 10.0)
    # Wrapped heights, so that long error messages stay centred and inside the picture.
    title_height = QFontMetricsF(title_font).boundingRect(QRectF(0, 0, width, 1e6), flags, title).height()
    detail_height = 0.0
    if detail:
        detail_height = QFontMetricsF(detail_font).boundingRect(QRectF(0, 0, width, 1e6), flags, detail).height()
    top = max(area.top() + margin, area.center().y() - (title_height + detail_height + 6) / 2)
    painter.setFont(title_font)
    painter.setPen(color or QColor(240, 240, 240))
    painter.drawText(QRectF(area.left() + margin, top, width, title_height), flags, title)
    if detail:
        painter.setFont(detail_font)
        painter.setPen(QColor(220, 220, 220))
        painter.drawText(QRectF(area.left() + margin, top + title_height + 6, width, detail_height), flags, detail)
