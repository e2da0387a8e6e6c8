"""Camera-like degradations applied after composition: blur, uneven lighting, gamma and noise."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Effects:
    """How one picture is degraded.

    Attributes:
        blur_sigma: Gaussian blur standard deviation in pixels (0 for sharp).
        light_gradient: relative brightness change across the picture (0 for even lighting).
        light_angle_deg: direction in which the picture gets brighter.
        brightness: overall exposure factor (1 leaves it unchanged).
        gamma: tone curve exponent on [0, 1] intensities (1 leaves it unchanged).
        noise_sigma: per-pixel Gaussian noise as a fraction of 255.
    """

    blur_sigma: float = 0.0
    light_gradient: float = 0.0
    light_angle_deg: float = 0.0
    brightness: float = 1.0
    gamma: float = 1.0
    noise_sigma: float = 0.0


def _lighting_gain(height: int, width: int, effects: Effects) -> np.ndarray:
    """``[H, W]`` multiplicative exposure map: overall brightness times a linear ramp."""
    theta = math.radians(effects.light_angle_deg)
    span = float(max(height, width))
    xs = (np.arange(width, dtype=np.float32) - width / 2.0) * (math.cos(theta) / span)
    ys = (np.arange(height, dtype=np.float32) - height / 2.0) * (math.sin(theta) / span)
    return effects.brightness * (1.0 + effects.light_gradient * (ys[:, None] + xs[None, :]))


# Standard normal quantiles of the 256 byte values: mapping random bytes through them gives
# Gaussian noise (quantised to 256 levels, invisible in 8-bit output) several times faster
# than drawing normal variates.
_NORMAL_QUANTILES = np.array([NormalDist().inv_cdf((k + 0.5) / 256.0) for k in range(256)], dtype=np.float32)


def _gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    random_bytes = np.frombuffer(rng.bytes(math.prod(shape)), dtype=np.uint8).reshape(shape)
    return cv2.LUT(random_bytes, _NORMAL_QUANTILES * np.float32(sigma))


def apply_effects(image: np.ndarray, effects: Effects, rng: np.random.Generator) -> np.ndarray:
    """Degrade a composed picture into the final 8-bit image.

    Args:
        image: ``[H, W, 3]`` float32 RGB in [0, 255]; modified in place.
        effects: what to apply.
        rng: source of the sensor noise.

    Returns:
        ``[H, W, 3]`` uint8 RGB, C-contiguous.
    """
    # Optics first (blur, exposure), then sensor noise, then the tone curve of the output.
    if effects.blur_sigma > 0.05:
        image = cv2.GaussianBlur(image, (0, 0), effects.blur_sigma)
    if effects.light_gradient != 0.0 or effects.brightness != 1.0:
        gain = _lighting_gain(image.shape[0], image.shape[1], effects)
        image *= cv2.merge([gain, gain, gain])  # same-shape product; trailing-axis broadcasting is slow
    if effects.noise_sigma * 255.0 >= 0.5:
        image += _gaussian_noise(rng, image.shape, effects.noise_sigma * 255.0)
    out = cv2.convertScaleAbs(image)  # rounds and saturates to [0, 255]; the image holds no negatives
    if abs(effects.gamma - 1.0) > 1e-3:
        lut = np.round(255.0 * (np.arange(256) / 255.0) ** effects.gamma).astype(np.uint8)
        out = cv2.LUT(out, lut)
    return np.ascontiguousarray(out)
