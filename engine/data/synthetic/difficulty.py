"""From one ``difficulty`` scalar to scene settings, and from a rendered scene back to a score.

``sample_scene_params`` spreads the scalar over the knobs of the generator (object count
and size, overlap, contrast, clutter, background, camera effects). Each knob follows its
own slightly jittered copy of the scalar, so images of equal nominal difficulty still
differ in *why* they are hard. ``true_difficulty`` scores what was actually rendered
(visible objects, measured contrast, applied noise and blur), which is the number to
correlate with a router's scores.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np

from engine.data.synthetic.effects import Effects

logger = logging.getLogger(__name__)

# Spread of each knob's private copy of the difficulty scalar (mid-range).
_KNOB_JITTER = 0.08
# Smallest and largest nominal object diameters, as fractions of the image's short side.
# The hard end stays within reach of a stride-8 detector at 320 px (about 19 px and up): a
# world where nothing is findable teaches a router nothing about where the second exit helps.
_EASY_SIZES = (0.22, 0.45)
_HARD_SIZES = (0.06, 0.14)
# Range of objects per image at both ends.
_EASY_COUNT, _HARD_COUNT = (1, 3), (8, 20)
# Object-to-surroundings colour distance (fraction of the RGB cube diagonal) at both ends.
_EASY_CONTRAST, _HARD_CONTRAST = 0.5, 0.22
_MAX_DISTRACTORS = 20
_MAX_NOISE, _MAX_BLUR = 0.025, 0.8
# Largest share of an object that may be hidden by others or cut by the frame.
_MAX_OVERLAP = 0.4


def _lerp(easy: float, hard: float, t: float) -> float:
    return easy + (hard - easy) * t


def _log_lerp(easy: float, hard: float, t: float) -> float:
    return math.exp(_lerp(math.log(easy), math.log(hard), t))


def size_range(difficulty: float) -> tuple[float, float]:
    """Smallest and largest nominal object diameter at a difficulty, as fractions of the short side."""
    return (
        _log_lerp(_EASY_SIZES[0], _HARD_SIZES[0], difficulty),
        _log_lerp(_EASY_SIZES[1], _HARD_SIZES[1], difficulty),
    )


def sample_difficulty(rng: np.random.Generator) -> float:
    """A difficulty in [0, 1]: uniform 60% of the time, else U-shaped so both ends are well covered."""
    if rng.random() < 0.6:
        return float(rng.random())
    return float(rng.beta(0.4, 0.4))


@dataclass(frozen=True)
class SceneParams:
    """Concrete settings for one scene.

    Attributes:
        difficulty: the scalar the settings were derived from.
        num_objects: how many objects to try to place (some may not fit or end up hidden).
        size_range: smallest and largest nominal object diameter, fractions of the short side.
        max_overlap: largest share of a new object's box that earlier objects may already cover.
        clustering: chance that an object is placed right beside an earlier one, so they overlap.
        truncation: share of an object's radius that may stick out of the frame.
        contrast: target colour distance between an object and its surroundings.
        max_aspect: largest width/height stretch (and its inverse) of an object.
        num_distractors: pieces of clutter to scatter.
        busyness: background texture strength in [0, 1].
        shade: strongest brightness ramp across an object.
        effects: camera degradations.
    """

    difficulty: float
    num_objects: int
    size_range: tuple[float, float]
    max_overlap: float
    clustering: float
    truncation: float
    contrast: float
    max_aspect: float
    num_distractors: int
    busyness: float
    shade: float
    effects: Effects


def sample_scene_params(difficulty: float, rng: np.random.Generator) -> SceneParams:
    """Derive scene settings from the difficulty scalar.

    At 0: one to three large, high-contrast, unoccluded objects on a calm background with a
    clean exposure. At 1: 8 to 20 objects of 19 to 45 px (at 320 px), low contrast, overlap
    and truncation, dense clutter, a busy background, blur, noise and uneven light.
    """
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")

    # The jitter vanishes at both ends, so 0 and 1 mean exactly the easiest and hardest settings.
    spread = _KNOB_JITTER * min(1.0, 4.0 * difficulty * (1.0 - difficulty))

    def knob() -> float:
        return min(1.0, max(0.0, difficulty + spread * rng.standard_normal()))

    d_count, d_size, d_overlap, d_contrast, d_clutter = knob(), knob(), knob(), knob(), knob()
    low = round(_lerp(_EASY_COUNT[0], _HARD_COUNT[0], d_count))
    high = round(_lerp(_EASY_COUNT[1], _HARD_COUNT[1], d_count))
    clutter = max(0.0, d_clutter - 0.15) / 0.85
    return SceneParams(
        difficulty=float(difficulty),
        num_objects=int(rng.integers(low, high + 1)),
        size_range=size_range(d_size),
        max_overlap=_lerp(0.0, _MAX_OVERLAP, d_overlap),
        clustering=_lerp(0.0, 0.5, d_overlap),
        truncation=_lerp(0.0, _MAX_OVERLAP, d_overlap),
        contrast=_lerp(_EASY_CONTRAST, _HARD_CONTRAST, d_contrast),
        max_aspect=_lerp(1.15, 1.35, d_size),
        num_distractors=round(_MAX_DISTRACTORS * clutter * float(rng.uniform(0.6, 1.2))),
        busyness=_lerp(0.05, 0.95, d_clutter),
        shade=_lerp(0.1, 0.35, d_contrast),
        effects=sample_effects(knob(), rng),
    )


def sample_effects(difficulty: float, rng: np.random.Generator) -> Effects:
    """Camera degradations for a difficulty in [0, 1] (none at 0)."""
    blur_weight = max(0.0, difficulty - 0.15) / 0.85
    return Effects(
        blur_sigma=_MAX_BLUR * blur_weight * float(rng.uniform(0.5, 1.0)),
        light_gradient=0.9 * difficulty * float(rng.uniform(0.3, 1.0)),
        light_angle_deg=float(rng.uniform(0.0, 360.0)),
        brightness=float(np.exp(rng.normal(0.0, 0.03 + 0.2 * difficulty))),
        gamma=float(np.exp(rng.normal(0.0, 0.03 + 0.3 * difficulty))),
        noise_sigma=_MAX_NOISE * difficulty**1.5 * float(rng.uniform(0.5, 1.0)),
    )


@dataclass(frozen=True)
class DifficultyFactors:
    """What made one rendered image (or frame) hard.

    Attributes:
        difficulty: the scalar the scene was sampled with.
        num_objects: annotated (sufficiently visible) objects.
        min_object_size: smallest box side among them in pixels; the image's short side when
            there are none, so an empty image reads as easy on this axis.
        mean_occlusion: mean hidden share of the annotated objects (0 when there are none).
        contrast: mean colour distance between each object and its surroundings, as a fraction
            of the RGB cube diagonal; 1 when there are no objects.
        noise: sensor noise standard deviation as a fraction of 255.
        blur: Gaussian blur sigma in pixels.
        num_distractors: pieces of clutter drawn.
        busyness: background texture strength in [0, 1].
        true_difficulty: :func:`true_difficulty` of the factors above, in [0, 1].
    """

    difficulty: float
    num_objects: int
    min_object_size: float
    mean_occlusion: float
    contrast: float
    noise: float
    blur: float
    num_distractors: int
    busyness: float
    true_difficulty: float

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready mapping, floats rounded to 4 decimals."""
        return {key: round(value, 4) if isinstance(value, float) else value for key, value in asdict(self).items()}


# How much each normalised factor contributes to the true difficulty (the weights sum to 1).
TRUE_DIFFICULTY_WEIGHTS = {
    "size": 0.25,
    "contrast": 0.2,
    "count": 0.15,
    "occlusion": 0.1,
    "noise": 0.1,
    "blur": 0.1,
    "clutter": 0.1,
}


def true_difficulty(
    *,
    num_objects: int,
    min_object_size: float,
    short_side: int,
    mean_occlusion: float,
    contrast: float,
    noise: float,
    blur: float,
    num_distractors: int,
    busyness: float,
) -> float:
    """Score the rendered factors in [0, 1], each mapped to [0, 1] before a weighted sum.

    Object size counts on a log scale relative to the image's short side (a quarter of it
    or more is 0, 5% or less is 1); the object count on a log scale up to the hard end's
    largest count; contrast is 0 at or above 0.45 and 1 at 0.2 or below; occlusion, noise,
    blur and clutter are linear up to their maxima.
    """

    def unit(value: float) -> float:
        return min(1.0, max(0.0, value))

    relative_size = max(min_object_size, 1e-3) / short_side
    terms = {
        "size": unit(math.log(0.25 / relative_size) / math.log(0.25 / 0.05)),
        "contrast": unit((0.45 - contrast) / 0.25),
        "count": unit(math.log1p(num_objects) / math.log1p(_HARD_COUNT[1])),
        "occlusion": unit(mean_occlusion / _MAX_OVERLAP),
        "noise": unit(noise / _MAX_NOISE),
        "blur": unit(blur / _MAX_BLUR),
        "clutter": unit(0.5 * num_distractors / _MAX_DISTRACTORS + 0.5 * busyness),
    }
    return float(sum(TRUE_DIFFICULTY_WEIGHTS[name] * value for name, value in terms.items()))


FULL_RANGE = (0.0, 1.0)


def check_range(level_range: tuple[float, float]) -> tuple[float, float]:
    """``level_range`` as two floats, or ``ValueError`` unless ``0 <= low <= high <= 1``."""
    low, high = (float(v) for v in level_range)
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"difficulty range must satisfy 0 <= low <= high <= 1, got {low:g}-{high:g}")
    return low, high


class DifficultySchedule:
    """Difficulty over time: random levels at key times, eased between them.

    Smoothstep easing makes the curve flat around each key time, which gives calm and busy
    stretches rather than a constant drift.

    Args:
        times: increasing key times in seconds, starting at 0.
        levels: difficulty at each key time, in [0, 1].
    """

    def __init__(self, times: np.ndarray, levels: np.ndarray) -> None:
        if len(times) != len(levels) or len(times) < 2 or np.any(np.diff(times) <= 0):
            raise ValueError("need at least two strictly increasing key times, one level each")
        self.times = np.asarray(times, dtype=np.float64)
        self.levels = np.clip(np.asarray(levels, dtype=np.float64), 0.0, 1.0)

    def __call__(self, t: float) -> float:
        """Difficulty at time ``t`` seconds (held constant beyond the last key time)."""
        if t >= self.times[-1]:
            return float(self.levels[-1])
        k = max(0, int(np.searchsorted(self.times, t, side="right")) - 1)
        span = self.times[k + 1] - self.times[k]
        u = (t - self.times[k]) / span
        eased = u * u * (3.0 - 2.0 * u)
        return float(self.levels[k] + (self.levels[k + 1] - self.levels[k]) * eased)

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        duration_s: float,
        mean_gap_s: float = 5.0,
        level_range: tuple[float, float] = FULL_RANGE,
    ) -> DifficultySchedule:
        """Random schedule covering ``duration_s``: levels alternate between calm and busy halves.

        Args:
            rng: random source.
            duration_s: seconds the key times must cover.
            mean_gap_s: mean time between key times.
            level_range: ``(low, high)`` within [0, 1]; every value of the schedule stays inside it.

        Raises:
            ValueError: for a range that is reversed or leaves [0, 1].
        """
        low, high = check_range(level_range)
        gaps = rng.uniform(0.6 * mean_gap_s, 1.4 * mean_gap_s, size=int(duration_s / (0.6 * mean_gap_s)) + 2)
        times = np.concatenate([[0.0], np.cumsum(gaps)])
        # Alternating halves guarantee both calm and busy stretches even in short clips.
        calm_first = rng.random() < 0.5
        levels = np.array([
            rng.uniform(0.0, 0.35) if (k % 2 == 0) == calm_first else rng.uniform(0.6, 1.0) for k in range(len(times))
        ])
        # Squeezing the levels (rather than drawing them from the range) keeps the same random draws, so
        # the full range reproduces earlier clips exactly and a narrow one keeps the calm/busy rhythm.
        # Smoothstep easing never overshoots its two key levels, so the whole curve stays in the range.
        return cls(times, low + (high - low) * levels)
