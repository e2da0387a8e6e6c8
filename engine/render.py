"""Drawing detections and the per-frame exit badge onto RGB images (OpenCV, no torch)."""

from __future__ import annotations

import cv2
import numpy as np

from engine.detections import Detections

# Exit colours (RGB), shared with the GUI: exit 1 teal, exit 2 orange.
EXIT_COLORS = {1: (0, 170, 160), 2: (240, 130, 20)}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def draw_detections(image: np.ndarray, det: Detections, badge: bool = True, latency_ms: float | None = None,
                    copy: bool = True) -> np.ndarray:
    """Boxes with class name, track id and confidence, plus (optionally) the exit badge; returns the image."""
    out = image.copy() if copy else image
    scale = max(0.35, min(out.shape[:2]) / 900)
    thickness = max(1, round(scale * 2))
    for box, cid, text in zip(det.boxes, det.class_ids, det.captions()):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        color = class_color(int(cid))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        (tw, th), base = cv2.getTextSize(text, FONT, scale * 0.8, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + base + 2
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 2, ty + 1), color, -1)
        cv2.putText(out, text, (x1 + 1, ty - base + 1), FONT, scale * 0.8, (0, 0, 0), 1, cv2.LINE_AA)
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


def draw_badge(image: np.ndarray, det: Detections, latency_ms: float | None, scale: float) -> None:
    """Top-left badge (see :func:`badge_lines`), in the exit's colour."""
    color = EXIT_COLORS.get(det.exit, (200, 200, 200))
    lines = badge_lines(det, latency_ms)
    font_scale = scale * 0.9
    sizes = [cv2.getTextSize(t, FONT, font_scale, 1)[0] for t in lines]
    line_h = max(h for _, h in sizes) + int(8 * scale) + 2
    width = max(w for w, _ in sizes) + int(16 * scale) + 4
    height = line_h * len(lines) + 6
    x0, y0 = 6, 6
    overlay = image[y0:y0 + height, x0:x0 + width]
    if overlay.size:
        overlay[:] = (overlay * 0.35).astype(np.uint8)
    cv2.rectangle(image, (x0, y0), (x0 + int(6 * scale) + 2, y0 + height), color, -1)
    for i, text in enumerate(lines):
        y = y0 + (i + 1) * line_h - 2
        text_color = color if i == 0 else (235, 235, 235)
        cv2.putText(image, text, (x0 + int(12 * scale) + 4, y), FONT, font_scale, text_color,
                    2 if i == 0 else 1, cv2.LINE_AA)
