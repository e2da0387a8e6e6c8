"""Painting anti-aliased layers onto a float canvas while tracking who owns each pixel.

A layer is an 8-bit coverage patch (``alpha``) placed at an integer origin. Patches may
reach past the image border: the part outside is counted in the layer's full area but
not painted, so frame edges hide objects the same way occluders do. Beside the picture,
the canvas keeps a label map: the id of the layer that covers each pixel most recently
(0 for background, negative ids for clutter). The visible extent of an object is read
back from that map once every layer is down.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

# Coverage is rendered at this many samples per pixel side and averaged down. OpenCV's own
# anti-aliased fill grows shapes by about half a pixel per side, which would bias small
# boxes; supersampling gives the true coverage. Clutter is never annotated and gets the
# coarser setting.
_SUPERSAMPLE_FINE, _SUPERSAMPLE_COARSE = 4, 2
# Coordinates reach OpenCV as fixed point with this many fractional bits.
_SHIFT_BITS = 4
_SHIFT_SCALE = float(1 << _SHIFT_BITS)
# A pixel belongs to a layer once the layer covers at least half of it.
_OWNER_ALPHA = 128
# Patches smaller than this are painted flat: a ramp across a few pixels is invisible.
_MIN_SHADED_SIZE = 16
# Largest RGB distance between two colours; contrasts are fractions of it.
MAX_COLOUR_DISTANCE = 255.0 * math.sqrt(3.0)


@dataclass(frozen=True)
class Patch:
    """Coverage of one layer: ``alpha`` is ``[h, w]`` uint8, its top-left pixel sits at ``(x0, y0)``."""

    alpha: np.ndarray
    x0: int
    y0: int


@dataclass(frozen=True)
class Painted:
    """Where a layer landed.

    Attributes:
        full_area: pixels the layer would own on an unbounded canvas with nothing on top.
        bounds: ``(x0, y0, x1, y1)`` of the patch clipped to the image, or None when fully outside.
    """

    full_area: int
    bounds: tuple[int, int, int, int] | None


def _patch_frame(points: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    (low_x, low_y), (high_x, high_y) = points.min(axis=0).tolist(), points.max(axis=0).tolist()
    return (
        math.floor(low_x - margin),
        math.floor(low_y - margin),
        math.ceil(high_x + margin) + 1,
        math.ceil(high_y + margin) + 1,
    )


def _fixed_point(points: np.ndarray, x0: int, y0: int, scale: int) -> np.ndarray:
    # Our coordinates give pixel i the span [i, i + 1); OpenCV puts pixel centres on integers,
    # hence the half-sample shift after scaling.
    scaled = (points - np.array([x0, y0], dtype=np.float32)) * scale - 0.5
    return np.round(scaled * _SHIFT_SCALE).astype(np.int32)


def _supersampled(frame: tuple[int, int, int, int], draw: Callable[[np.ndarray, int], None], precise: bool) -> Patch:
    """Run ``draw(canvas, scale)`` on a fine canvas covering ``frame`` and average it down to coverage."""
    x0, y0, x1, y1 = frame
    width, height = x1 - x0, y1 - y0
    scale = _SUPERSAMPLE_FINE if precise else _SUPERSAMPLE_COARSE
    fine = np.zeros((height * scale, width * scale), dtype=np.uint8)
    draw(fine, scale)
    return Patch(cv2.resize(fine, (width, height), interpolation=cv2.INTER_AREA), x0, y0)


def fill_patch(outer: np.ndarray, holes: tuple[np.ndarray, ...] = (), precise: bool = True) -> Patch:
    """Coverage of a filled polygon with optional holes, all given in pixel coordinates.

    ``precise=False`` samples coverage more coarsely, which is enough for clutter.
    """
    frame = _patch_frame(outer, margin=1.0)

    def draw(fine: np.ndarray, scale: int) -> None:
        cv2.fillPoly(fine, [_fixed_point(outer, frame[0], frame[1], scale)], 255, cv2.LINE_8, _SHIFT_BITS)
        for hole in holes:
            cv2.fillPoly(fine, [_fixed_point(hole, frame[0], frame[1], scale)], 0, cv2.LINE_8, _SHIFT_BITS)

    return _supersampled(frame, draw, precise)


def stroke_patch(polylines: list[np.ndarray], thickness: int, closed: bool = False) -> Patch:
    """Coverage of open (or closed) polylines drawn with a pen ``thickness`` pixels wide."""
    frame = _patch_frame(np.concatenate(polylines, axis=0), margin=thickness / 2.0 + 1.0)

    def draw(fine: np.ndarray, scale: int) -> None:
        shifted = [_fixed_point(line, frame[0], frame[1], scale) for line in polylines]
        cv2.polylines(fine, shifted, closed, 255, max(1, int(thickness)) * scale, cv2.LINE_8, _SHIFT_BITS)

    return _supersampled(frame, draw, precise=False)


def contrasting_colour(rng: np.random.Generator, under: np.ndarray, contrast: float) -> np.ndarray:
    """A colour at a given distance from the colour it will be painted over.

    Args:
        rng: random source for the hue direction.
        under: ``[3]`` mean RGB of what lies beneath the layer.
        contrast: wanted RGB distance as a fraction of :data:`MAX_COLOUR_DISTANCE`.

    Returns:
        ``[3]`` float32 RGB in [0, 255]. When the wanted distance does not fit inside the
        RGB cube, the farthest colour along the best of a few random directions is used.
    """
    wanted = contrast * MAX_COLOUR_DISTANCE
    start = [float(v) for v in under]
    best_direction, best_room = [0.0, 0.0, 0.0], -1.0
    # Plain floats: this runs once per layer, where numpy call overhead would dominate.
    for direction in rng.normal(size=(6, 3)).tolist():
        norm = math.sqrt(sum(v * v for v in direction)) + 1e-9
        unit = [v / norm for v in direction]
        for signed in (unit, [-v for v in unit]):
            room = _room_along(start, signed)
            if room > best_room:
                best_direction, best_room = signed, room
        if best_room >= wanted:
            break
    step = min(wanted, best_room)
    colour = [min(255.0, max(0.0, s + step * d)) for s, d in zip(start, best_direction)]
    return np.array(colour, dtype=np.float32)


def _room_along(start: list[float], direction: list[float]) -> float:
    """How far one can walk from ``start`` along ``direction`` before leaving the RGB cube."""
    room = math.inf
    for value, step in zip(start, direction):
        if step > 1e-9:
            room = min(room, (255.0 - value) / step)
        elif step < -1e-9:
            room = min(room, -value / step)
    return room


class Canvas:
    """A float32 RGB picture plus an int16 map of which layer owns each pixel.

    Args:
        background: ``[H, W, 3]`` float32 RGB in [0, 255]; the canvas paints into it in place.
    """

    def __init__(self, background: np.ndarray) -> None:
        if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.float32:
            raise ValueError(f"background must be float32 [H, W, 3], got {background.dtype} {background.shape}")
        self.image = background
        self.labels = np.zeros(background.shape[:2], dtype=np.int16)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def clip(self, patch: Patch) -> tuple[int, int, int, int] | None:
        """The patch's rectangle ``(x0, y0, x1, y1)`` inside the image, or None if it misses."""
        h, w = patch.alpha.shape
        x0, y0 = max(patch.x0, 0), max(patch.y0, 0)
        x1, y1 = min(patch.x0 + w, self.width), min(patch.y0 + h, self.height)
        return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None

    def paint(
        self,
        patch: Patch,
        colour: np.ndarray,
        label: int,
        opacity: float = 1.0,
        shade: tuple[float, float] = (0.0, 0.0),
    ) -> Painted:
        """Blend ``colour`` through the patch's coverage and claim the pixels it covers.

        Args:
            patch: coverage and position.
            colour: ``[3]`` RGB.
            label: id written to the label map where the layer covers at least half a pixel.
            opacity: extra transparency factor in [0, 1] (fading clutter in videos).
            shade: ``(strength, angle_deg)`` of a linear brightness ramp across the patch, so
                objects are not flat cut-outs of a single colour.
        """
        coverage = patch.alpha if opacity >= 1.0 else (patch.alpha * opacity).astype(np.uint8)
        full_area = int(np.count_nonzero(coverage >= _OWNER_ALPHA))
        bounds = self.clip(patch)
        if bounds is None:
            return Painted(full_area, None)
        x0, y0, x1, y1 = bounds
        inside = coverage[y0 - patch.y0 : y1 - patch.y0, x0 - patch.x0 : x1 - patch.x0]
        weight = inside.astype(np.float32) * np.float32(1.0 / 255.0)
        region = self.image[y0:y1, x0:x1]
        # OpenCV per-channel arithmetic and same-shape numpy ops: broadcasting numpy over a
        # trailing axis of three would cost several times more on large patches.
        difference = cv2.subtract(self._fill(colour, shade, patch, bounds), region)
        region += difference * cv2.merge([weight, weight, weight])
        self.labels[y0:y1, x0:x1][inside >= _OWNER_ALPHA] = label
        return Painted(full_area, bounds)

    @staticmethod
    def _fill(
        colour: np.ndarray, shade: tuple[float, float], patch: Patch, bounds: tuple[int, int, int, int]
    ) -> np.ndarray | tuple[float, float, float, float]:
        """The colour to paint: a scalar when flat, else ``[h', w', 3]`` with a linear brightness ramp."""
        strength, angle_deg = shade
        h, w = patch.alpha.shape
        if strength == 0.0 or max(h, w) < _MIN_SHADED_SIZE:
            return (float(colour[0]), float(colour[1]), float(colour[2]), 0.0)
        x0, y0, x1, y1 = bounds
        theta = math.radians(angle_deg)
        # Ramp from -0.5 to 0.5 across the patch along the shading direction.
        xs = (np.arange(x0, x1, dtype=np.float32) - (patch.x0 + w / 2.0)) * np.float32(math.cos(theta) / max(h, w))
        ys = (np.arange(y0, y1, dtype=np.float32) - (patch.y0 + h / 2.0)) * np.float32(math.sin(theta) / max(h, w))
        gain = np.float32(strength) * (ys[:, None] + xs[None, :]) + np.float32(1.0)  # [h', w']
        return cv2.merge([gain * float(value) for value in colour[:3]])

    def visible_extent(self, label: int, bounds: tuple[int, int, int, int]) -> tuple[tuple[int, int, int, int], int]:
        """Tight box ``(x1, y1, x2, y2)`` (exclusive max edges) and pixel count of what ``label`` still owns.

        Returns an empty box ``(0, 0, 0, 0)`` with count 0 when the layer is fully hidden.
        """
        x0, y0, x1, y1 = bounds
        owned = self.labels[y0:y1, x0:x1] == label
        area = int(np.count_nonzero(owned))
        if area == 0:
            return (0, 0, 0, 0), 0
        cols = np.flatnonzero(owned.any(axis=0))
        rows = np.flatnonzero(owned.any(axis=1))
        return (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1), area
