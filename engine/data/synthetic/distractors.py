"""Clutter that looks shape-like but belongs to no class: scribbles, lines, arcs, lumps, zigzags.

Distractors teach the detector that "a coloured thing with edges" is not enough to be an
object. None of them can pass for a class outline: strokes are open and thin, arcs span
at most half a turn (a ring is closed), and lumps have irregular, random radii.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from engine.data.synthetic.compositing import Patch, fill_patch, stroke_patch

logger = logging.getLogger(__name__)

DISTRACTOR_KINDS = ("scribble", "lines", "arc", "lump", "zigzag")


@dataclass(frozen=True, eq=False)
class DistractorSpec:
    """One piece of clutter.

    Attributes:
        kind: one of :data:`DISTRACTOR_KINDS`.
        center: ``(x, y)`` in pixels.
        polylines: point lists relative to ``center``, in pixels.
        thickness: pen width in pixels; 0 fills the first polyline as a polygon instead.
        colour: RGB in [0, 255].
        opacity: 1 for solid; videos fade clutter in and out with it.
    """

    kind: str
    center: tuple[float, float]
    polylines: tuple[np.ndarray, ...]
    thickness: int
    colour: tuple[float, float, float]
    opacity: float = 1.0

    def patch(self) -> Patch:
        """Anti-aliased coverage at the current centre."""
        offset = np.array(self.center, dtype=np.float32)
        placed = [line + offset for line in self.polylines]
        if self.thickness == 0:
            return fill_patch(placed[0], precise=False)
        return stroke_patch(placed, self.thickness)

    def moved(self, center: tuple[float, float], opacity: float | None = None) -> DistractorSpec:
        """The same clutter at another place (and optionally another opacity)."""
        return replace(self, center=center, opacity=self.opacity if opacity is None else opacity)


def _scribble(rng: np.random.Generator, size: float) -> list[np.ndarray]:
    steps = int(rng.integers(6, 15))
    headings = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0.0, 0.9, size=steps))
    moves = np.stack([np.cos(headings), np.sin(headings)], axis=1) * (size / 5.0)
    points = np.cumsum(moves, axis=0)
    return [points - points.mean(axis=0)]


def _lines(rng: np.random.Generator, size: float) -> list[np.ndarray]:
    count = int(rng.integers(1, 4))
    return [rng.uniform(-size / 2, size / 2, size=(2, 2)) for _ in range(count)]


def _arc(rng: np.random.Generator, size: float) -> list[np.ndarray]:
    radius = size / 2.0 * rng.uniform(0.6, 1.0)
    start = rng.uniform(0.0, 2 * math.pi)
    angles = start + np.linspace(0.0, math.radians(rng.uniform(40.0, 170.0)), 16)
    return [np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius]


def _lump(rng: np.random.Generator, size: float) -> list[np.ndarray]:
    corners = int(rng.integers(9, 17))
    angles = np.sort(rng.uniform(0.0, 2 * math.pi, size=corners))
    radii = size / 2.0 * rng.uniform(0.35, 1.0, size=corners)
    return [np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)]


def _zigzag(rng: np.random.Generator, size: float) -> list[np.ndarray]:
    teeth = int(rng.integers(4, 9))
    along = np.linspace(-size / 2, size / 2, teeth + 1)
    across = np.where(np.arange(teeth + 1) % 2 == 0, -1.0, 1.0) * size * rng.uniform(0.08, 0.2)
    theta = rng.uniform(0.0, math.pi)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    return [np.stack([along * cos_t - across * sin_t, along * sin_t + across * cos_t], axis=1)]


_GEOMETRY = {"scribble": _scribble, "lines": _lines, "arc": _arc, "lump": _lump, "zigzag": _zigzag}


def sample_distractor(
    rng: np.random.Generator, center: tuple[float, float], size: float, colour: np.ndarray
) -> DistractorSpec:
    """Random clutter of a random kind.

    Args:
        rng: random source.
        center: ``(x, y)`` in pixels.
        size: rough extent in pixels (comparable to an object's nominal size).
        colour: RGB in [0, 255].
    """
    kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
    polylines = tuple(line.astype(np.float32) for line in _GEOMETRY[kind](rng, size))
    thickness = 0 if kind == "lump" else max(1, round(size * float(rng.uniform(0.04, 0.12))))
    rgb = (float(colour[0]), float(colour[1]), float(colour[2]))
    return DistractorSpec(kind, center, polylines, thickness, rgb)
