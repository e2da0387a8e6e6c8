"""Sampling one still scene from a difficulty and rendering any scene with its ground truth.

Ground truth comes from the renderer, not from the sampled poses: after every layer is
painted, each object's box is the tight axis-aligned box of the pixels it still owns, so
occluders and the frame border are already taken into account. Objects showing less than
:data:`MIN_VISIBLE_FRACTION` of themselves are left unannotated.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from engine.data.synthetic.background import render_background
from engine.data.synthetic.classes import SHAPE_CLASSES, ObjectSpec
from engine.data.synthetic.compositing import MAX_COLOUR_DISTANCE, Canvas, Painted, contrasting_colour
from engine.data.synthetic.difficulty import DifficultyFactors, SceneParams, sample_scene_params, true_difficulty
from engine.data.synthetic.distractors import DistractorSpec, sample_distractor
from engine.data.synthetic.effects import Effects, apply_effects

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
MIN_VISIBLE_FRACTION = 0.3
MIN_BOX_SIDE = 2
_PLACEMENT_TRIES = 10
# Label id painted by clutter: it hides objects but is never annotated.
_CLUTTER_LABEL = -1

Layer = ObjectSpec | DistractorSpec


@dataclass(frozen=True)
class ObjectAnnotation:
    """Ground truth for one visible object.

    Attributes:
        class_id: index into ``CLASS_NAMES``.
        source: position of the object among the scene's objects (clutter not counted), in
            drawing order; lets callers map annotations back to what they placed.
        box: ``(x1, y1, x2, y2)`` pixel edges of the visible part; ``x2``/``y2`` are exclusive,
            so the width is ``x2 - x1``.
        area: visible pixels.
        occlusion: hidden share of the object (covered by other layers or outside the frame).
        contrast: colour distance between the object and its surroundings in the final image,
            as a fraction of the RGB cube diagonal.
    """

    class_id: int
    source: int
    box: tuple[int, int, int, int]
    area: int
    occlusion: float
    contrast: float


@dataclass(frozen=True, eq=False)
class SyntheticImage:
    """A rendered picture with its annotations.

    Attributes:
        image: ``[H, W, 3]`` uint8 RGB.
        annotations: one entry per visible object, in drawing order.
        factors: what made the picture hard.
    """

    image: np.ndarray
    annotations: tuple[ObjectAnnotation, ...]
    factors: DifficultyFactors

    @property
    def boxes(self) -> np.ndarray:
        """``[K, 4]`` float32 ``x1, y1, x2, y2`` boxes."""
        return np.array([a.box for a in self.annotations], dtype=np.float32).reshape(-1, 4)

    @property
    def class_ids(self) -> np.ndarray:
        """``[K]`` int64 class indices."""
        return np.array([a.class_id for a in self.annotations], dtype=np.int64)


def generate_image(
    difficulty: float,
    seed: int | np.random.SeedSequence | np.random.Generator,
    size: tuple[int, int] = (320, 320),
) -> SyntheticImage:
    """Sample and render one scene.

    Args:
        difficulty: 0 (a few big clear objects) to 1 (many small, faint, occluded ones in clutter).
        seed: everything random derives from it; equal seeds give identical results. A
            generator is used (and advanced) as it is.
        size: ``(width, height)`` in pixels.
    """
    width, height = size
    if width < 16 or height < 16:
        raise ValueError(f"image size must be at least 16 x 16, got {width} x {height}")
    rng = np.random.default_rng(seed)
    params = sample_scene_params(difficulty, rng)
    background = render_background(rng, width, height, params.busyness)
    layers = sample_layers(rng, params, background)
    return render_scene(background, layers, params.effects, rng, difficulty=difficulty, busyness=params.busyness)


def sample_layers(rng: np.random.Generator, params: SceneParams, background: np.ndarray) -> list[Layer]:
    """Objects and clutter for a scene, shuffled into drawing order (later layers hide earlier ones)."""
    layers: list[Layer] = [*_place_objects(rng, params, background), *_scatter_clutter(rng, params, background)]
    return [layers[int(k)] for k in rng.permutation(len(layers))]


def sample_object(
    rng: np.random.Generator, center: tuple[float, float], radius: float, params: SceneParams, background: np.ndarray
) -> ObjectSpec:
    """A random object of a random class, coloured to stand out from the background by ``params.contrast``."""
    # One batched draw instead of six scalar calls: per-call overhead dominates at this size.
    pick_class, contrast_jitter, stretch, angle, shade, shade_angle = rng.random(6).tolist()
    log_aspect = math.log(params.max_aspect)
    under = _mean_around(background, center, radius)
    colour = contrasting_colour(rng, under, params.contrast * (0.7 + 0.8 * contrast_jitter))
    return ObjectSpec(
        class_id=min(int(pick_class * len(SHAPE_CLASSES)), len(SHAPE_CLASSES) - 1),
        center=center,
        radius=radius,
        aspect=math.exp(log_aspect * (2.0 * stretch - 1.0)),
        angle_deg=360.0 * angle,
        colour=(float(colour[0]), float(colour[1]), float(colour[2])),
        shade=(params.shade * shade, 360.0 * shade_angle),
    )


def sample_radius(rng: np.random.Generator, params: SceneParams, short_side: int) -> float:
    """Half of a log-uniform nominal diameter from ``params.size_range``."""
    low, high = params.size_range
    return 0.5 * short_side * low * (high / low) ** rng.random()


def _place_objects(rng: np.random.Generator, params: SceneParams, background: np.ndarray) -> list[ObjectSpec]:
    height, width = background.shape[:2]
    placed_boxes: list[tuple[float, float, float, float]] = []
    objects = []
    for _ in range(params.num_objects):
        radius = sample_radius(rng, params, min(width, height))
        # Keep the centre far enough inside that at most `truncation` of the radius sticks out.
        inset = radius * (1.0 - params.truncation)
        for _ in range(_PLACEMENT_TRIES):
            if placed_boxes and rng.random() < params.clustering:
                cx, cy = _beside(rng, placed_boxes[int(rng.integers(len(placed_boxes)))], radius)
            else:
                cx = float(rng.uniform(inset, width - inset)) if 2 * inset < width else width / 2.0
                cy = float(rng.uniform(inset, height - inset)) if 2 * inset < height else height / 2.0
            box = (cx - radius, cy - radius, cx + radius, cy + radius)
            if _largest_overlap(box, placed_boxes) <= params.max_overlap:
                break
        else:
            continue  # no room left at this size; fewer objects is fine
        placed_boxes.append(box)
        objects.append(sample_object(rng, (cx, cy), radius, params, background))
    return objects


def _beside(
    rng: np.random.Generator, other: tuple[float, float, float, float], radius: float
) -> tuple[float, float]:
    """A centre close enough to the object in box ``other`` that one partly hides the other."""
    other_radius = (other[2] - other[0]) / 2.0
    distance = (other_radius + radius) * float(rng.uniform(0.35, 0.9))
    theta = float(rng.uniform(0.0, 2.0 * math.pi))
    return other[0] + other_radius + distance * math.cos(theta), other[1] + other_radius + distance * math.sin(theta)


def _largest_overlap(box: tuple[float, float, float, float], others: list[tuple[float, float, float, float]]) -> float:
    """Largest intersection with any of ``others``, as a share of the smaller box of the pair."""
    # Plain Python: a few dozen boxes, where numpy's per-call overhead would dominate.
    area = (box[2] - box[0]) * (box[3] - box[1])
    largest = 0.0
    for x0, y0, x1, y1 in others:
        inter_w = min(box[2], x1) - max(box[0], x0)
        inter_h = min(box[3], y1) - max(box[1], y0)
        if inter_w > 0.0 and inter_h > 0.0:
            smaller = min(area, (x1 - x0) * (y1 - y0))
            largest = max(largest, inter_w * inter_h / max(smaller, 1e-6))
    return largest


def _scatter_clutter(rng: np.random.Generator, params: SceneParams, background: np.ndarray) -> list[DistractorSpec]:
    height, width = background.shape[:2]
    clutter = []
    for _ in range(params.num_distractors):
        x, y, stretch, contrast_jitter = rng.random(4).tolist()
        center = (x * width, y * height)
        size = 2.0 * sample_radius(rng, params, min(width, height)) * (0.8 + 1.2 * stretch)
        under = _mean_around(background, center, size / 2.0)
        colour = contrasting_colour(rng, under, params.contrast * (0.6 + 0.8 * contrast_jitter))
        clutter.append(sample_distractor(rng, center, size, colour))
    return clutter


def _mean_around(image: np.ndarray, center: tuple[float, float], radius: float) -> np.ndarray:
    height, width = image.shape[:2]
    x0, x1 = max(0, int(center[0] - radius)), min(width, int(center[0] + radius) + 1)
    y0, y1 = max(0, int(center[1] - radius)), min(height, int(center[1] + radius) + 1)
    if x0 >= x1 or y0 >= y1:
        x0, y0, x1, y1 = 0, 0, width, height
    # cv2.mean is far cheaper than a numpy reduction on a small strided window.
    return np.array(cv2.mean(image[y0:y1, x0:x1])[:3], dtype=np.float32)


def render_scene(
    background: np.ndarray,
    layers: Sequence[Layer],
    effects: Effects,
    rng: np.random.Generator,
    *,
    difficulty: float,
    busyness: float,
) -> SyntheticImage:
    """Paint layers in order, degrade the picture and read back the ground truth.

    Args:
        background: ``[H, W, 3]`` float32 RGB; painted into in place.
        layers: objects and clutter, back to front.
        effects: camera degradations applied after painting.
        rng: source of the sensor noise.
        difficulty: the scalar the scene was sampled with (recorded in the factors).
        busyness: background texture strength (recorded in the factors).
    """
    canvas = Canvas(background)
    painted_objects: list[tuple[int, ObjectSpec, Painted]] = []
    for layer in layers:
        if isinstance(layer, ObjectSpec):
            label = len(painted_objects) + 1
            painted = canvas.paint(layer.patch(), np.array(layer.colour, np.float32), label, shade=layer.shade)
            painted_objects.append((label, layer, painted))
        elif layer.opacity > 0.0:
            canvas.paint(layer.patch(), np.array(layer.colour, np.float32), _CLUTTER_LABEL, opacity=layer.opacity)
    image = apply_effects(canvas.image, effects, rng)
    annotations = []
    for label, spec, painted in painted_objects:
        annotation = _annotate(canvas, image, label, spec.class_id, painted)
        if annotation is not None:
            annotations.append(annotation)
    num_distractors = sum(1 for layer in layers if isinstance(layer, DistractorSpec) and layer.opacity > 0.0)
    factors = summarise_factors(annotations, image.shape[:2], effects, difficulty, num_distractors, busyness)
    return SyntheticImage(image, tuple(annotations), factors)


def _annotate(
    canvas: Canvas, image: np.ndarray, label: int, class_id: int, painted: Painted
) -> ObjectAnnotation | None:
    if painted.bounds is None or painted.full_area == 0:
        return None
    box, area = canvas.visible_extent(label, painted.bounds)
    visible = area / painted.full_area
    if visible < MIN_VISIBLE_FRACTION or min(box[2] - box[0], box[3] - box[1]) < MIN_BOX_SIDE:
        return None
    contrast = _measure_contrast(image, canvas.labels, label, box)
    occlusion = round(1.0 - min(visible, 1.0), 4)
    return ObjectAnnotation(class_id, label - 1, box, area, occlusion, round(contrast, 4))


def _measure_contrast(image: np.ndarray, labels: np.ndarray, label: int, box: tuple[int, int, int, int]) -> float:
    """Colour distance between an object's visible pixels and everything else in a margin around it."""
    x1, y1, x2, y2 = box
    pad = max(2, min(x2 - x1, y2 - y1) // 3)
    height, width = labels.shape
    x1, y1, x2, y2 = max(0, x1 - pad), max(0, y1 - pad), min(width, x2 + pad), min(height, y2 + pad)
    owned = (labels[y1:y2, x1:x2] == label).view(np.uint8)
    pixels = image[y1:y2, x1:x2]
    inside = np.array(cv2.mean(pixels, mask=owned)[:3])
    if owned.all():
        surroundings = np.array(cv2.mean(image)[:3])  # the object fills its neighbourhood
    else:
        surroundings = np.array(cv2.mean(pixels, mask=1 - owned)[:3])
    return float(np.linalg.norm(inside - surroundings) / MAX_COLOUR_DISTANCE)


def summarise_factors(
    annotations: Sequence[ObjectAnnotation],
    image_shape: tuple[int, int],
    effects: Effects,
    difficulty: float,
    num_distractors: int,
    busyness: float,
) -> DifficultyFactors:
    """Collect the difficulty factors of a rendered picture (``image_shape`` is ``(H, W)``)."""
    short_side = int(min(image_shape))
    if annotations:
        min_size = float(min(min(a.box[2] - a.box[0], a.box[3] - a.box[1]) for a in annotations))
        mean_occlusion = float(np.mean([a.occlusion for a in annotations]))
        contrast = float(np.mean([a.contrast for a in annotations]))
    else:
        min_size, mean_occlusion, contrast = float(short_side), 0.0, 1.0
    measured = {
        "num_objects": len(annotations),
        "min_object_size": min_size,
        "mean_occlusion": mean_occlusion,
        "contrast": contrast,
        "noise": float(effects.noise_sigma),
        "blur": float(effects.blur_sigma),
        "num_distractors": int(num_distractors),
        "busyness": float(busyness),
    }
    score = true_difficulty(short_side=short_side, **measured)
    return DifficultyFactors(difficulty=float(difficulty), true_difficulty=score, **measured)
