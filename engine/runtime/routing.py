"""How the engine picks each frame's exit: hold a frame rate, a fixed threshold, a fixed share, or a forced exit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from engine.errors import UserError
from engine.model.calibration import Calibration
from engine.model.exits import Route
from engine.runtime.controller import ControllerState, RateController

ModeKind = Literal["target_fps", "threshold", "second_fraction", "first", "second"]


@dataclass(frozen=True)
class RoutingMode:
    kind: ModeKind
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind in ("first", "second"):
            return
        if self.value is None or not math.isfinite(self.value):
            raise UserError(f"routing mode {self.kind} needs a number")
        if self.kind == "target_fps" and self.value <= 0:
            raise UserError(f"target fps must be positive, got {self.value}")
        if self.kind in ("threshold", "second_fraction") and not 0 <= self.value <= 1:
            raise UserError(f"{self.kind.replace('_', ' ')} must be between 0 and 1, got {self.value}")

    def describe(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value:g}"


def mode_from_controls(kind: str, value: float | None, target_fps: float | None,
                       default_fps: float = 10.0) -> RoutingMode:
    """The mode a set of routing controls asks for: a kind, the value of its slider, and the target
    rate (used by ``target_fps`` only; ``default_fps`` before one is known)."""
    if kind == "target_fps":
        return RoutingMode("target_fps", target_fps or default_fps)
    if kind in ("first", "second"):
        return RoutingMode(kind)  # type: ignore[arg-type]
    return RoutingMode(kind, value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Decision:
    threshold: float
    route: Route
    controller: ControllerState | None = None


class RoutingPolicy:
    """Turns the current mode into a per-frame decision; owns the rate controller."""

    def __init__(self, mode: RoutingMode, calibration: Calibration | None = None) -> None:
        self.calibration = calibration
        c1 = calibration.exit1_ms if calibration and calibration.exit1_ms else 30.0
        c2 = calibration.exit2_ms if calibration and calibration.exit2_ms else 2 * c1
        self.controller = RateController(mode.value if mode.kind == "target_fps" else 10.0, c1, c2)
        self.mode = mode
        self.set_mode(mode)

    def set_mode(self, mode: RoutingMode) -> None:
        if mode.kind == "target_fps":
            self.controller.set_target(float(mode.value))
        self.mode = mode

    def decide(self) -> Decision:
        kind, value = self.mode.kind, self.mode.value
        if kind in ("first", "second"):
            return Decision(0.5, kind)
        if kind == "threshold":
            return Decision(float(value), "auto")
        if kind == "second_fraction":
            if self.calibration is not None:
                return Decision(self.calibration.threshold_for(float(value)), "auto")
            return Decision(self.controller.threshold_for(float(value)), "auto")
        state = self.controller.decide()
        return Decision(state.threshold, "auto", state)

    def observe(self, exit_taken: int, score: float, frame_ms: float, cycle_ms: float | None = None,
                source_interval_ms: float | None = None) -> None:
        self.controller.observe(exit_taken, score, frame_ms, cycle_ms, source_interval_ms)
