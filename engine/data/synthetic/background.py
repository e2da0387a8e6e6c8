"""Textured backgrounds: gradients, value noise, stripes, checkerboards and blurred blobs.

Each texture is a pattern in roughly [-1, 1] that is tinted and added to a random base
colour. ``busyness`` in [0, 1] scales how strong the patterns are and how many are
stacked: near 0 the background is a gentle gradient or haze, near 1 it is a loud mix of
sharp stripes, checks and blobs that compete with the objects for attention.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import cv2
import numpy as np

logger = logging.getLogger(__name__)

TEXTURES = ("gradient", "radial", "noise", "stripes", "checker", "blobs")
# Textures with hard edges; calm backgrounds avoid them.
_SHARP_TEXTURES = ("stripes", "checker")


def _coordinates(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Column and row coordinates in [-1, 1] on the short side, shaped for broadcasting."""
    scale = 2.0 / min(height, width)
    xs = (np.arange(width, dtype=np.float32) - width / 2.0) * scale
    ys = (np.arange(height, dtype=np.float32) - height / 2.0) * scale
    return xs[None, :], ys[:, None]


def _gradient(rng: np.random.Generator, height: int, width: int, busyness: float) -> np.ndarray:
    xs, ys = _coordinates(height, width)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    return np.clip(xs * math.cos(theta) + ys * math.sin(theta), -1.0, 1.0)


def _radial(rng: np.random.Generator, height: int, width: int, busyness: float) -> np.ndarray:
    # Smooth, so computed at quarter resolution and scaled up.
    small_h, small_w = max(4, height // 4), max(4, width // 4)
    xs, ys = _coordinates(small_h, small_w)
    cx, cy = (float(v) for v in rng.uniform(-0.8, 0.8, size=2))
    distance = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    field = 1.0 - np.clip(distance, 0.0, 2.0)
    return cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)


def _value_noise(rng: np.random.Generator, height: int, width: int, busyness: float) -> np.ndarray:
    # Octaves are summed at half resolution (the finest has cells of about 8 px) and scaled up once.
    half_h, half_w = max(4, height // 2), max(4, width // 2)
    octaves = 1 + round(3 * busyness)  # finer detail joins as the background gets busier
    field = np.zeros((half_h, half_w), dtype=np.float32)
    cells, weight, total = float(rng.uniform(2.0, 5.0)), 1.0, 0.0
    for _ in range(octaves):
        grid = rng.uniform(-1.0, 1.0, size=(max(2, int(cells * height / width)) + 1, int(cells) + 1))
        field += weight * cv2.resize(grid.astype(np.float32), (half_w, half_h), interpolation=cv2.INTER_CUBIC)
        total += weight
        cells, weight = cells * 2.3, weight * 0.55
    return cv2.resize(field / total, (width, height), interpolation=cv2.INTER_LINEAR)


def _periodic(rng: np.random.Generator, height: int, width: int, busyness: float, checker: bool) -> np.ndarray:
    xs, ys = _coordinates(height, width)
    theta = rng.uniform(0.0, math.pi)
    # Period as a fraction of the short side; busy backgrounds get finer patterns.
    period = rng.uniform(0.06, 0.5) * (1.2 - 0.8 * busyness)
    frequency = 2.0 * math.pi * 2.0 / period
    along = xs * math.cos(theta) + ys * math.sin(theta)
    wave = np.sin(along * frequency)
    if checker:
        across = -xs * math.sin(theta) + ys * math.cos(theta)
        wave = wave * np.sin(across * frequency)
    # Steepening and clipping the wave turns soft bands into hard-edged ones as busyness grows.
    sharpness = np.float32(1.0 + 7.0 * busyness * rng.uniform(0.5, 1.0))
    return np.clip(wave * sharpness, -1.0, 1.0)


def _stripes(rng: np.random.Generator, height: int, width: int, busyness: float) -> np.ndarray:
    return _periodic(rng, height, width, busyness, checker=False)


def _checker(rng: np.random.Generator, height: int, width: int, busyness: float) -> np.ndarray:
    return _periodic(rng, height, width, busyness, checker=True)


def _blobs(rng: np.random.Generator, height: int, width: int, busyness: float) -> np.ndarray:
    # Drawn at quarter resolution and blurred there: the result is smooth anyway, and a
    # full-size blur with a large kernel would dominate the cost of a whole image.
    small_h, small_w = max(8, height // 4), max(8, width // 4)
    small = np.zeros((small_h, small_w), dtype=np.float32)
    for _ in range(int(4 + 12 * busyness)):
        center = (int(rng.integers(0, small_w)), int(rng.integers(0, small_h)))
        axes = tuple(int(v) for v in rng.integers(2, max(3, min(small_h, small_w) // 3), size=2))
        cv2.ellipse(small, center, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(-1, 1)), -1)
    sigma = max(1.0, min(small_h, small_w) * (0.08 - 0.05 * busyness))
    small = cv2.GaussianBlur(small, (0, 0), sigma)
    field = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return field / max(1e-3, float(np.abs(field).max()))


_TEXTURE_FIELDS: dict[str, Callable[[np.random.Generator, int, int, float], np.ndarray]] = {
    "gradient": _gradient,
    "radial": _radial,
    "noise": _value_noise,
    "stripes": _stripes,
    "checker": _checker,
    "blobs": _blobs,
}


def _pick_textures(rng: np.random.Generator, busyness: float) -> list[str]:
    layers = 1 + int(rng.random() < busyness) + int(rng.random() < busyness * 0.5)
    calm = [name for name in TEXTURES if name not in _SHARP_TEXTURES]
    names = []
    for _ in range(layers):
        pool = TEXTURES if rng.random() < busyness else calm
        names.append(pool[int(rng.integers(len(pool)))])
    return names


def render_background(rng: np.random.Generator, width: int, height: int, busyness: float) -> np.ndarray:
    """Draw a random textured background.

    Args:
        rng: random source; the same state gives the same picture.
        width: image width in pixels.
        height: image height in pixels.
        busyness: 0 for calm (weak, smooth patterns) to 1 for loud (strong, sharp, stacked).

    Returns:
        ``[H, W, 3]`` float32 RGB in [0, 255].
    """
    base = rng.uniform(40.0, 215.0, size=3)
    # Built as three planes merged at the end: numpy broadcasting over a trailing axis of
    # three is several times slower than whole-plane arithmetic.
    planes = [np.full((height, width), value, dtype=np.float32) for value in base]
    for name in _pick_textures(rng, busyness):
        field = _TEXTURE_FIELDS[name](rng, height, width, busyness).astype(np.float32, copy=False)
        # Strength of the pattern in RGB units, along a random tint direction.
        amplitude = 255.0 * (0.04 + 0.3 * busyness) * rng.uniform(0.5, 1.0)
        # Most patterns vary brightness only; the rest shift hue as well.
        tint = np.ones(3) if rng.random() < 0.6 else rng.normal(size=3)
        tint = tint / (np.linalg.norm(tint) + 1e-9) * amplitude
        for plane, weight in zip(planes, tint):
            cv2.scaleAdd(field, float(weight), plane, dst=plane)
    image = cv2.merge(planes)
    np.clip(image, 0.0, 255.0, out=image)
    return image
