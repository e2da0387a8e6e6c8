"""The object classes of the synthetic world and their outlines.

Every class is a filled shape that differs from the others by outline, not by
colour: colour, size, rotation and aspect are drawn at random per object. Outlines
are closed polygons in unit coordinates (centre at the origin, fitting the unit
circle, y pointing down). A shape may carry holes, which are painted back to
transparent after the outer contour (the ring's inner disc).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from engine.data.synthetic.compositing import Patch, fill_patch

logger = logging.getLogger(__name__)

# Enough vertices that a 150 px disc shows no facets; small discs cost no more to fill.
_ROUND_VERTICES = 64


@dataclass(frozen=True)
class ShapeClass:
    """One object class.

    Attributes:
        name: class label written to datasets.
        outer: ``[N, 2]`` float32 closed outline in unit coordinates.
        holes: outlines cut out of the filled outer contour.
    """

    name: str
    outer: np.ndarray
    holes: tuple[np.ndarray, ...] = ()


def _regular_polygon(num_vertices: int, radius: float = 1.0, start_deg: float = -90.0) -> np.ndarray:
    angles = np.deg2rad(start_deg + np.arange(num_vertices) * 360.0 / num_vertices)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1).astype(np.float32)


def _star(num_points: int = 5, inner_radius: float = 0.42) -> np.ndarray:
    outer = _regular_polygon(num_points)
    inner = _regular_polygon(num_points, inner_radius, start_deg=-90.0 + 180.0 / num_points)
    # Interleave tips and notches: [tip0, notch0, tip1, notch1, ...].
    return np.stack([outer, inner], axis=1).reshape(-1, 2)


def _plus(arm_half_width: float = 0.3) -> np.ndarray:
    w, r = arm_half_width, 0.95
    # Clockwise from the top arm's left corner.
    points = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w)]
    points += [(w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
    return np.array(points, dtype=np.float32)


def _arrow() -> np.ndarray:
    # Points right; the random rotation turns it any way.
    points = [(-1.0, -0.22), (0.12, -0.22), (0.12, -0.62), (1.0, 0.0), (0.12, 0.62), (0.12, 0.22), (-1.0, 0.22)]
    return np.array(points, dtype=np.float32)


def _square() -> np.ndarray:
    half = 1.0 / math.sqrt(2.0)  # corners on the unit circle
    return np.array([(-half, -half), (half, -half), (half, half), (-half, half)], dtype=np.float32)


SHAPE_CLASSES: tuple[ShapeClass, ...] = (
    ShapeClass("circle", _regular_polygon(_ROUND_VERTICES)),
    ShapeClass("square", _square()),
    ShapeClass("triangle", _regular_polygon(3)),
    ShapeClass("star", _star()),
    ShapeClass("plus", _plus()),
    ShapeClass("hexagon", _regular_polygon(6, start_deg=0.0)),
    ShapeClass("ring", _regular_polygon(_ROUND_VERTICES), holes=(_regular_polygon(_ROUND_VERTICES, 0.55),)),
    ShapeClass("arrow", _arrow()),
)

CLASS_NAMES: tuple[str, ...] = tuple(shape.name for shape in SHAPE_CLASSES)

def transform_outline(
    outline: np.ndarray, center: tuple[float, float], radius: float, aspect: float, angle_deg: float
) -> np.ndarray:
    """Place a unit outline in the image.

    Args:
        outline: ``[N, 2]`` unit-coordinate points.
        center: ``(x, y)`` position in pixels.
        radius: half the object's nominal size in pixels.
        aspect: width / height stretch applied before rotation (1 keeps the shape).
        angle_deg: rotation, counter-clockwise on screen.

    Returns:
        ``[N, 2]`` float32 pixel coordinates.
    """
    stretch = math.sqrt(aspect)
    scaled = outline * np.array([radius * stretch, radius / stretch], dtype=np.float32)
    theta = math.radians(angle_deg)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    # Row vectors times this matrix; screen y points down, so a positive angle turns (1, 0) towards -y.
    rotation = np.array([[cos_t, -sin_t], [sin_t, cos_t]], dtype=np.float32)
    return scaled @ rotation + np.array(center, dtype=np.float32)


@dataclass(frozen=True)
class ObjectSpec:
    """One object instance to draw.

    Attributes:
        class_id: index into :data:`SHAPE_CLASSES`.
        center: ``(x, y)`` in pixels; may lie outside the image.
        radius: half the nominal size in pixels (the outline fits this circle before stretching).
        aspect: width / height stretch before rotation.
        angle_deg: rotation.
        colour: RGB fill in [0, 255].
        shade: ``(strength, angle_deg)`` of the brightness ramp across the object.
    """

    class_id: int
    center: tuple[float, float]
    radius: float
    aspect: float
    angle_deg: float
    colour: tuple[float, float, float]
    shade: tuple[float, float] = (0.0, 0.0)

    def patch(self) -> Patch:
        """Anti-aliased coverage of the object at its pose."""
        shape = SHAPE_CLASSES[self.class_id]
        place = (self.center, self.radius, self.aspect, self.angle_deg)
        outer = transform_outline(shape.outer, *place)
        holes = tuple(transform_outline(hole, *place) for hole in shape.holes)
        return fill_patch(outer, holes)
