"""Drawing detections and the per-frame exit badge onto RGB images (OpenCV, no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from engine.detections import Detections

# Exit colours (RGB), shared with the GUI: exit 1 teal, exit 2 orange.
EXIT_COLORS = {1: (0, 170, 160), 2: (240, 130, 20)}
FONT = cv2.FONT_HERSHEY_SIMPLEX
BADGE_ORIGIN = (6, 6)
_STACK_PLACES = 16  # places next to other labels tried for a label whose usual ones are taken

#: A rectangle in pixels: ``left, top, right, bottom``.
Rect = tuple[float, float, float, float]


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_label(width: float, height: float, box: Rect, bounds: Rect, avoid: Rect | None = None,
                taken: Sequence[Rect] = ()) -> Rect:
    """Where a ``width`` x ``height`` label of ``box`` goes; recordings and the GUI both place labels so.

    By preference: just above the box; just inside its top (no room above, or ``avoid``, the
    badge, is there); just below the box. Where labels already ``taken`` cover those places (boxes
    that overlap), the label stacks above or below them, as near the box's top as there is room.
    Always within ``bounds``; clear of ``avoid`` and of the ``taken`` labels wherever one of those
    places is.
    """
    left = min(max(box[0] - 1, bounds[0]), max(bounds[0], bounds[2] - width))
    column = [t for t in taken if t[0] < left + width and left < t[2]]  # the only labels this one can hit

    def usable(tops: list[float]) -> tuple[list[float], list[float], float | None]:
        """Of ``tops``: those within bounds, those also clear of ``avoid``, and the first also clear
        of the column's labels (which overlap this one's width already: only heights can differ)."""
        fits = [top for top in tops if bounds[1] <= top and top + height <= bounds[3]]
        clear = [top for top in fits if avoid is None or not _overlap((left, top, left + width, top + height), avoid)]
        free = next((top for top in clear if not any(t[1] < top + height and top < t[3] for t in column)), None)
        return fits, clear, free

    preferred = [box[1] - height, box[1], box[3]]
    fits, clear, free = usable(preferred)
    if free is None and column:
        # Next to the labels in the way, nearest the usual place first (ties go up); a crowded
        # picture has hundreds of labels, and only the nearest places are worth a look.
        stacked = sorted({t[1] - height for t in column} | {t[3] for t in column},
                         key=lambda top: (abs(top - preferred[0]), top))
        _, _, free = usable(stacked[:_STACK_PLACES])
    top = free if free is not None else (clear or fits or [box[1]])[0]
    return left, top, left + width, top + height


def draw_detections(image: np.ndarray, det: Detections, badge: bool = True, latency_ms: float | None = None,
                    copy: bool = True) -> np.ndarray:
    """Boxes with class name, track id and confidence, plus (optionally) the exit badge; returns the image.

    Every box is drawn before any label, so that no box line crosses a label, and labels are
    placed by :func:`place_label`: clear of each other and of the badge.
    """
    out = image.copy() if copy else image
    scale = max(0.35, min(out.shape[:2]) / 900)
    thickness = max(1, round(scale * 2))
    height, width = out.shape[:2]
    colors = [class_color(int(cid)) for cid in det.class_ids]
    for box, color in zip(det.boxes, colors):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
    avoid = _badge_rect(det, latency_ms, scale) if badge else None
    taken: list[Rect] = []
    for box, color, text in zip(det.boxes, colors, det.captions()):
        (tw, th), base = cv2.getTextSize(text, FONT, scale * 0.8, 1)
        box_rect = tuple(float(v) for v in box)
        left, top, right, bottom = place_label(tw + 2, th + base + 2, box_rect, (0, 0, width, height), avoid, taken)
        taken.append((left, top, right, bottom))
        left, top = round(left), round(top)
        cv2.rectangle(out, (left, top), (left + tw + 1, top + th + base + 1), color, -1)  # corners inclusive
        cv2.putText(out, text, (left + 1, top + th + 1), FONT, scale * 0.8, (0, 0, 0), 1, cv2.LINE_AA)
    if badge:
        draw_badge(out, det, latency_ms, scale)
    return out


def badge_lines(det: Detections, latency_ms: float | None) -> list[str]:
    """The exit badge's text, for recordings and the GUI alike: the exit, the router score against
    the threshold it met (or that the exit was forced), and the capture-to-result latency.

    Scores are shown as ranks among the camera's recent frames when the runtime provides them
    (``0.62``: easier than 62 % of them), so they spread over [0, 1] whatever the router's
    saturation; the relation comes from the decision itself.
    """
    score, threshold = det.shown_score, det.shown_threshold
    if threshold is None:
        routing = f"router score {score:.2f} (exit forced)"
    else:
        relation = "<" if det.exit == 2 else ">="
        digits = 2
        # Close calls must not read as "0.50 < 0.50": show as many digits as tell them apart.
        while digits < 4 and f"{score:.{digits}f}" == f"{threshold:.{digits}f}":
            digits += 1
        routing = f"router score {score:.{digits}f} {relation} {threshold:.{digits}f}"
    lines = [f"EXIT {det.exit}", routing]
    if latency_ms is not None:
        lines.append(f"latency {latency_ms:.0f} ms")
    return lines


def _badge_layout(lines: list[str], scale: float) -> tuple[int, int, int]:
    """The badge's width, height and line height for ``lines`` at ``scale``."""
    sizes = [cv2.getTextSize(t, FONT, scale * 0.9, 1)[0] for t in lines]
    line_h = max(h for _, h in sizes) + int(8 * scale) + 2
    return max(w for w, _ in sizes) + int(16 * scale) + 4, line_h * len(lines) + 6, line_h


def _badge_rect(det: Detections, latency_ms: float | None, scale: float) -> Rect:
    """Where :func:`draw_badge` draws, so that labels can keep out of the way."""
    width, height, _ = _badge_layout(badge_lines(det, latency_ms), scale)
    x0, y0 = BADGE_ORIGIN
    return x0, y0, x0 + width, y0 + height


def draw_badge(image: np.ndarray, det: Detections, latency_ms: float | None, scale: float) -> None:
    """Top-left badge (see :func:`badge_lines`), in the exit's colour."""
    color = EXIT_COLORS.get(det.exit, (200, 200, 200))
    lines = badge_lines(det, latency_ms)
    font_scale = scale * 0.9
    width, height, line_h = _badge_layout(lines, scale)
    x0, y0 = BADGE_ORIGIN
    overlay = image[y0:y0 + height, x0:x0 + width]
    if overlay.size:
        overlay[:] = (overlay * 0.35).astype(np.uint8)
    cv2.rectangle(image, (x0, y0), (x0 + int(6 * scale) + 2, y0 + height), color, -1)
    for i, text in enumerate(lines):
        y = y0 + (i + 1) * line_h - 2
        text_color = color if i == 0 else (235, 235, 235)
        cv2.putText(image, text, (x0 + int(12 * scale) + 4, y), FONT, font_scale, text_color,
                    2 if i == 0 else 1, cv2.LINE_AA)
