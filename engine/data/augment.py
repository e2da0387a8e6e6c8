"""Image + box transforms for YOLO-style training: letterbox, mosaic, random affine, HSV, flip.

All functions work on OpenCV images (``H x W x 3`` uint8, BGR) and boxes as float32
``[K, 4]`` pixel ``x1, y1, x2, y2`` of the image they come with, and return both transformed
together, so a box always describes the same pixels as before. Randomness comes from an
explicit ``numpy.random.Generator``, so each data-loader worker draws its own stream.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

PAD_VALUE = 114
_PAD_COLOR = (PAD_VALUE, PAD_VALUE, PAD_VALUE)


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation strengths (defaults: YOLOv7 ``hyp.scratch.p5``).

    Attributes:
        hsv_h: hue gain range, as a fraction of the hue circle.
        hsv_s: saturation gain range (gain drawn in ``1 +- hsv_s``).
        hsv_v: value gain range (gain drawn in ``1 +- hsv_v``).
        degrees: rotation range, +- degrees.
        translate: translation range, +- fraction of the output size.
        scale: zoom range, factor drawn in ``1 +- scale``.
        shear: shear range, +- degrees.
        fliplr: probability of a horizontal flip.
        mosaic: probability that a sample is a 4-image mosaic.
    """

    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.2
    scale: float = 0.9
    shear: float = 0.0
    fliplr: float = 0.5
    mosaic: float = 1.0

    def __post_init__(self) -> None:
        limits = {"hsv_h": (0, 0.5), "hsv_s": (0, 1), "hsv_v": (0, 1), "degrees": (0, 180),
                  "translate": (0, 0.5), "scale": (0, 0.99), "shear": (0, 45), "fliplr": (0, 1), "mosaic": (0, 1)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def resize_long_side(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resize so the longer side is ``size``, keeping the aspect ratio; returns (image, scale)."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    if scale == 1.0:
        return image, scale
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Area averaging avoids aliasing when shrinking; bilinear is the better choice when enlarging.
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, new_size, interpolation=interpolation), scale


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Fit ``image`` in a ``size`` x ``size`` square, keeping aspect, centred on grey padding.

    Returns:
        The square image, the scale applied, and the (left, top) padding in pixels: a point
        ``p`` of the original maps to ``p * scale + pad``.
    """
    resized, scale = resize_long_side(image, size)
    height, width = resized.shape[:2]
    left, top = (size - width) // 2, (size - height) // 2
    padded = cv2.copyMakeBorder(resized, top, size - height - top, left, size - width - left,
                                cv2.BORDER_CONSTANT, value=_PAD_COLOR)
    return padded, scale, (left, top)


def mosaic(tiles: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], size: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join four (image, boxes, classes) tiles around a random centre on a ``2*size`` canvas.

    Each tile (longer side ``size``) touches the centre with one corner: tile 0 lies up-left of
    it, 1 up-right, 2 down-left, 3 down-right; parts beyond the canvas are cut off. The caller
    crops the canvas back to ``size`` with :func:`random_affine`.

    Returns:
        The canvas ``[2*size, 2*size, 3]``, boxes ``[K, 4]`` in canvas pixels, classes ``[K]``.
    """
    canvas_size = 2 * size
    canvas = np.full((canvas_size, canvas_size, 3), PAD_VALUE, np.uint8)
    centre_x, centre_y = (int(v) for v in rng.uniform(0.5 * size, 1.5 * size, 2))
    all_boxes, all_classes = [], []
    for quadrant, (image, boxes, classes) in enumerate(tiles):
        height, width = image.shape[:2]
        # Canvas position of the tile's top-left corner; may be negative (tile cut off).
        origin_x = centre_x - width if quadrant in (0, 2) else centre_x
        origin_y = centre_y - height if quadrant in (0, 1) else centre_y
        x1, y1 = max(origin_x, 0), max(origin_y, 0)
        x2, y2 = min(origin_x + width, canvas_size), min(origin_y + height, canvas_size)
        canvas[y1:y2, x1:x2] = image[y1 - origin_y:y2 - origin_y, x1 - origin_x:x2 - origin_x]
        shifted = boxes + np.array([origin_x, origin_y, origin_x, origin_y], np.float32)
        # Clip to the visible part of this tile, so no box reaches into a neighbouring tile.
        shifted[:, 0::2] = shifted[:, 0::2].clip(x1, x2)
        shifted[:, 1::2] = shifted[:, 1::2].clip(y1, y2)
        keep = (shifted[:, 2] > shifted[:, 0]) & (shifted[:, 3] > shifted[:, 1])
        all_boxes.append(shifted[keep])
        all_classes.append(classes[keep])
    return canvas, np.concatenate(all_boxes).reshape(-1, 4), np.concatenate(all_classes)


def random_affine(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, out_size: int,
                  config: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random rotation, zoom, shear and translation into an ``out_size`` square.

    The input centre maps to the output centre plus the random translation, so a ``2*size``
    mosaic canvas is cropped around its middle and a ``size`` letterboxed image stays in place.
    Boxes become the bounding boxes of their transformed corners, clipped to the output; boxes
    that lose most of their area, get thinner than 2 px or elongated beyond 20:1 are dropped.
    """
    height, width = image.shape[:2]
    zoom = rng.uniform(1 - config.scale, 1 + config.scale)
    to_origin = _translation(-width / 2, -height / 2)
    rotate = np.eye(3)
    rotate[:2] = cv2.getRotationMatrix2D((0, 0), rng.uniform(-config.degrees, config.degrees), zoom)
    shear = np.eye(3)
    shear[0, 1], shear[1, 0] = np.tan(np.deg2rad(rng.uniform(-config.shear, config.shear, 2)))
    shift_x, shift_y = rng.uniform(-config.translate, config.translate, 2) * out_size
    to_output = _translation(out_size / 2 + shift_x, out_size / 2 + shift_y)
    matrix = to_output @ shear @ rotate @ to_origin  # [3, 3], applied right to left
    warped = cv2.warpAffine(image, matrix[:2], (out_size, out_size), flags=cv2.INTER_LINEAR,
                            borderValue=_PAD_COLOR)
    moved = transform_boxes(boxes, matrix, out_size)
    keep = _plausible_boxes(boxes * zoom, moved)
    return warped, moved[keep], classes[keep]


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray, out_size: int) -> np.ndarray:
    """Bounding boxes of the corners of ``boxes`` under the 3x3 ``matrix``, clipped to the output."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4).astype(np.float32)
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)  # [4K, 2] x, y of every corner
    corners = np.concatenate([corners, np.ones((len(corners), 1))], axis=1) @ matrix.T
    corners = corners[:, :2].reshape(-1, 4, 2)  # [K, 4 corners, 2]
    moved = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    return moved.clip(0, out_size).astype(np.float32)


def _plausible_boxes(before: np.ndarray, after: np.ndarray, min_size: float = 2.0,
                     min_area_ratio: float = 0.1, max_aspect: float = 20.0) -> np.ndarray:
    """Mask of boxes that are still a reasonable view of their object after a transform."""
    w_before, h_before = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w_after, h_after = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w_after / (h_after + 1e-16), h_after / (w_after + 1e-16))
    area_ratio = w_after * h_after / (w_before * h_before + 1e-16)
    return (w_after > min_size) & (h_after > min_size) & (area_ratio > min_area_ratio) & (aspect < max_aspect)


def augment_hsv(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random hue, saturation and value gains (returns a new image; the input is not changed)."""
    gains = rng.uniform(-1, 1, 3) * (config.hsv_h, config.hsv_s, config.hsv_v) + 1
    if np.allclose(gains, 1.0):
        return image
    hue, saturation, value = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    levels = np.arange(256, dtype=np.float32)
    # OpenCV stores 8-bit hue in 0..179: the hue lookup table wraps around at 180.
    hue_table = ((levels * gains[0]) % 180).astype(np.uint8)
    saturation_table = np.clip(levels * gains[1], 0, 255).astype(np.uint8)
    value_table = np.clip(levels * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, hue_table), cv2.LUT(saturation, saturation_table), cv2.LUT(value, value_table)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def flip_horizontal(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror the image left-right and its boxes with it."""
    width = image.shape[1]
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped


def _translation(dx: float, dy: float) -> np.ndarray:
    matrix = np.eye(3)
    matrix[0, 2], matrix[1, 2] = dx, dy
    return matrix
