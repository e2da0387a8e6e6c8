"""A moving world for videos: objects drift, spin, bounce, enter and leave as the difficulty changes.

The clip's difficulty follows a :class:`DifficultySchedule`. It sets how many objects the
world aims for and how large new ones are, how much clutter is faded in, how loud the
background is (a blend of a calm and a busy texture) and how strong the camera effects
are. Nothing pops: objects enter and leave across the frame edges, clutter fades, and the
background and effects follow the smooth schedule.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from engine.data.synthetic.background import render_background
from engine.data.synthetic.classes import ObjectSpec
from engine.data.synthetic.compositing import contrasting_colour
from engine.data.synthetic.difficulty import DifficultySchedule, sample_scene_params, size_range
from engine.data.synthetic.distractors import DistractorSpec, sample_distractor
from engine.data.synthetic.effects import Effects
from engine.data.synthetic.scene import Layer, sample_object, sample_radius

logger = logging.getLogger(__name__)

_MAX_CLUTTER = 24
# Difficulty range over which one piece of clutter fades from invisible to solid.
_CLUTTER_FADE = 0.1
_SPAWN_GAP_S = 0.2
_LIFETIME_S = (6.0, 20.0)
_SPEED_PX_S = (25.0, 110.0)
_SPIN_DEG_S = 35.0
# Leaving objects steer towards the nearest edge with this acceleration, so they exit within a few seconds.
_EXIT_ACCEL_PX_S2 = 120.0


@dataclass
class _Mover:
    """State of one moving object (mutable; owned by the world)."""

    track_id: int
    spec: ObjectSpec
    velocity: tuple[float, float]
    spin_deg_s: float
    expires_at: float
    entered: bool = False
    leaving: bool = False


@dataclass(frozen=True)
class WorldFrame:
    """What the world looks like at one instant, ready for :func:`render_scene`.

    Attributes:
        background: ``[H, W, 3]`` float32 RGB, a fresh array the renderer may paint into.
        layers: objects and clutter, back to front.
        track_ids: track id of each object layer, in drawing order.
        effects: camera degradations for this frame.
        difficulty: the schedule's value at this instant.
        busyness: background texture strength.
    """

    background: np.ndarray
    layers: list[Layer]
    track_ids: list[int]
    effects: Effects
    difficulty: float
    busyness: float


class MovingWorld:
    """Simulates the objects and clutter of one clip, frame by frame.

    Args:
        rng: random source for the whole clip.
        width: frame width in pixels.
        height: frame height in pixels.
        schedule: difficulty over time.
    """

    def __init__(self, rng: np.random.Generator, width: int, height: int, schedule: DifficultySchedule) -> None:
        self.rng = rng
        self.width, self.height = width, height
        self.schedule = schedule
        self.calm_background = render_background(rng, width, height, busyness=0.1)
        self.busy_background = render_background(rng, width, height, busyness=0.9)
        self.clutter, self.clutter_thresholds, self.clutter_velocities = self._sample_clutter()
        self.movers: list[_Mover] = []
        self._next_track_id = 0
        self._last_spawn = -math.inf
        self._light_phase = float(rng.uniform(0.0, 2.0 * math.pi))
        self._light_angle = float(rng.uniform(0.0, 360.0))
        self._fill_at_start()

    def _sample_clutter(self) -> tuple[list[DistractorSpec], np.ndarray, np.ndarray]:
        short_side = min(self.width, self.height)
        params = sample_scene_params(0.8, self.rng)
        mean = self.busy_background.mean(axis=(0, 1))
        clutter = []
        for _ in range(_MAX_CLUTTER):
            center = (float(self.rng.uniform(0, self.width)), float(self.rng.uniform(0, self.height)))
            size = 2.0 * sample_radius(self.rng, params, short_side) * float(self.rng.uniform(1.0, 2.5))
            colour = contrasting_colour(self.rng, mean, float(self.rng.uniform(0.1, 0.35)))
            clutter.append(sample_distractor(self.rng, center, size, colour))
        # Each piece appears once the difficulty passes its threshold; none in calm stretches.
        thresholds = self.rng.uniform(0.2, 0.95, size=_MAX_CLUTTER)
        velocities = self.rng.normal(0.0, 12.0, size=(_MAX_CLUTTER, 2))
        return clutter, thresholds, velocities

    def _fill_at_start(self) -> None:
        """Start with the target number of objects already inside the frame."""
        for _ in range(self._target_count(self.schedule(0.0))):
            mover = self._spawn(0.0)
            radius = mover.spec.radius
            inside = (
                float(self.rng.uniform(radius, max(radius + 1, self.width - radius))),
                float(self.rng.uniform(radius, max(radius + 1, self.height - radius))),
            )
            mover.spec = replace(mover.spec, center=inside)
            mover.entered = True

    @staticmethod
    def _target_count(difficulty: float) -> int:
        # Convex in the difficulty, so calm stretches hold only a handful of objects.
        return round(1.0 + 19.0 * difficulty**1.3)

    def _spawn(self, t: float) -> _Mover:
        """A new object just outside a random edge, heading into the frame."""
        rng = self.rng
        params = sample_scene_params(self.schedule(t), rng)
        radius = sample_radius(rng, params, min(self.width, self.height))
        edge = int(rng.integers(4))
        # Inward normal of each edge (left, right, top, bottom) and a start point just beyond it.
        normal = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))[edge]
        start = (
            (-radius, float(rng.uniform(0, self.height))),
            (self.width + radius, float(rng.uniform(0, self.height))),
            (float(rng.uniform(0, self.width)), -radius),
            (float(rng.uniform(0, self.width)), self.height + radius),
        )[edge]
        heading = math.atan2(normal[1], normal[0]) + float(rng.uniform(-0.8, 0.8))
        speed = float(rng.uniform(*_SPEED_PX_S))
        blend = self._busyness(self.schedule(t))
        background = self.calm_background if blend < 0.5 else self.busy_background
        mover = _Mover(
            track_id=self._next_track_id,
            spec=sample_object(rng, start, radius, params, background),
            velocity=(speed * math.cos(heading), speed * math.sin(heading)),
            spin_deg_s=float(rng.uniform(-_SPIN_DEG_S, _SPIN_DEG_S)),
            expires_at=t + float(rng.uniform(*_LIFETIME_S)),
        )
        self._next_track_id += 1
        self._last_spawn = t
        self.movers.append(mover)
        return mover

    @staticmethod
    def _busyness(difficulty: float) -> float:
        return min(1.0, max(0.0, 0.05 + 0.9 * difficulty))

    def step(self, t: float, dt: float) -> WorldFrame:
        """Advance the world by ``dt`` seconds to time ``t`` and describe the frame there."""
        difficulty = self.schedule(t)
        self._manage_population(t, difficulty)
        for mover in self.movers:
            self._move(mover, dt)
        self.movers = [m for m in self.movers if not (m.leaving and self._is_outside(m))]
        busyness = self._busyness(difficulty)
        background = cv2.addWeighted(self.calm_background, 1.0 - busyness, self.busy_background, busyness, 0.0)
        behind, in_front = self._clutter_layers(t, difficulty)
        objects: list[Layer] = [m.spec for m in self.movers]
        return WorldFrame(
            background=background,
            layers=[*behind, *objects, *in_front],
            track_ids=[m.track_id for m in self.movers],
            effects=self._effects(t, difficulty),
            difficulty=difficulty,
            busyness=busyness,
        )

    def _manage_population(self, t: float, difficulty: float) -> None:
        for mover in self.movers:
            if t >= mover.expires_at:
                mover.leaving = True
        staying = [m for m in self.movers if not m.leaving]
        target = self._target_count(difficulty)
        if len(staying) < target and t - self._last_spawn >= _SPAWN_GAP_S:
            self._spawn(t)
        elif len(staying) > target:
            # Send away the object whose size fits the current difficulty worst.
            low, high = size_range(difficulty)
            wanted = 0.5 * min(self.width, self.height) * math.sqrt(low * high)  # radius at the log-middle
            worst = max(staying, key=lambda m: abs(math.log(m.spec.radius / wanted)))
            worst.leaving = True

    def _move(self, mover: _Mover, dt: float) -> None:
        x, y = mover.spec.center
        vx, vy = mover.velocity
        radius = mover.spec.radius
        if mover.leaving:
            # Steer smoothly towards the nearest edge.
            to_edges = {(-1.0, 0.0): x, (1.0, 0.0): self.width - x, (0.0, -1.0): y, (0.0, 1.0): self.height - y}
            ax, ay = min(to_edges, key=to_edges.get)
            vx, vy = vx + ax * _EXIT_ACCEL_PX_S2 * dt, vy + ay * _EXIT_ACCEL_PX_S2 * dt
        else:
            mover.entered = mover.entered or (
                radius <= x <= self.width - radius and radius <= y <= self.height - radius
            )
            if mover.entered:
                vx = abs(vx) if x < radius else -abs(vx) if x > self.width - radius else vx
                vy = abs(vy) if y < radius else -abs(vy) if y > self.height - radius else vy
        mover.velocity = (vx, vy)
        angle = mover.spec.angle_deg + mover.spin_deg_s * dt
        mover.spec = replace(mover.spec, center=(x + vx * dt, y + vy * dt), angle_deg=angle)

    def _is_outside(self, mover: _Mover) -> bool:
        x, y = mover.spec.center
        margin = 1.5 * mover.spec.radius
        return x < -margin or x > self.width + margin or y < -margin or y > self.height + margin

    def _clutter_layers(self, t: float, difficulty: float) -> tuple[list[Layer], list[Layer]]:
        """Visible clutter split into pieces drawn behind and in front of the objects."""
        opacities = np.clip((difficulty - self.clutter_thresholds) / _CLUTTER_FADE, 0.0, 1.0)
        behind: list[Layer] = []
        in_front: list[Layer] = []
        for index, (piece, opacity) in enumerate(zip(self.clutter, opacities.tolist())):
            if opacity <= 0.0:
                continue
            # Drift with wrap-around, so the clutter keeps moving without leaving for good.
            x = (piece.center[0] + self.clutter_velocities[index, 0] * t) % (self.width + 40) - 20
            y = (piece.center[1] + self.clutter_velocities[index, 1] * t) % (self.height + 40) - 20
            (in_front if index % 2 else behind).append(piece.moved((x, y), opacity))
        return behind, in_front

    def _effects(self, t: float, difficulty: float) -> Effects:
        """Camera effects that follow the schedule, with slow periodic lighting drift.

        Noise and blur stay a little below the still-image maxima: fresh noise in every frame
        is what costs H.264 the most bits.
        """
        wobble = math.sin(2.0 * math.pi * t / 11.0 + self._light_phase)
        return Effects(
            blur_sigma=0.8 * max(0.0, difficulty - 0.15) / 0.85,
            light_gradient=0.6 * difficulty,
            light_angle_deg=self._light_angle + 6.0 * t,
            brightness=1.0 + 0.12 * difficulty * wobble,
            gamma=1.0 + 0.25 * difficulty * math.sin(2.0 * math.pi * t / 17.0 + 2.0 * self._light_phase),
            noise_sigma=0.03 * difficulty**1.5,
        )
