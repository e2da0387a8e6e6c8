"""The rate controller against a simulated clock and simulated exit costs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.controller import RateController


class SimulatedEngine:
    """Frames whose router scores drift (calm and busy stretches) and whose exits cost c1 / c2 ms."""

    def __init__(self, c1: float, c2: float, overhead: float = 2.0, seed: int = 0) -> None:
        self.c1, self.c2, self.overhead = c1, c2, overhead
        self.rng = np.random.default_rng(seed)
        self.clock_ms = 0.0
        self.level = 0.5

    def run(self, controller: RateController, seconds: float) -> list[tuple[float, int, float]]:
        """(time ms, exit, frame ms) per frame for ``seconds`` of simulated time."""
        frames = []
        end = self.clock_ms + seconds * 1000
        while self.clock_ms < end:
            self.level = float(np.clip(self.level + self.rng.normal(0, 0.02), 0.1, 0.9))
            score = float(np.clip(self.rng.normal(self.level, 0.15), 0, 1))
            state = controller.decide()
            exit_taken = 2 if score < state.threshold else 1
            cost = (self.c2 if exit_taken == 2 else self.c1) + self.overhead + self.rng.normal(0, 1.0)
            controller.observe(exit_taken, score, cost)
            self.clock_ms += cost
            frames.append((self.clock_ms, exit_taken, cost))
        return frames


def rate_and_share(frames: list[tuple[float, int, float]], last_seconds: float) -> tuple[float, float]:
    end = frames[-1][0]
    recent = [f for f in frames if f[0] >= end - last_seconds * 1000]
    rate = len(recent) / (sum(f[2] for f in recent) / 1000)
    return rate, float(np.mean([f[1] == 2 for f in recent]))


def test_holds_a_target_between_the_two_exit_rates():
    engine = SimulatedEngine(c1=20, c2=50)
    controller = RateController(target_fps=30, exit1_ms=15, exit2_ms=70)  # deliberately wrong start costs
    frames = engine.run(controller, seconds=20)
    rate, share = rate_and_share(frames, last_seconds=10)
    assert rate == pytest.approx(30, rel=0.05)
    assert 0.1 < share < 0.9


def test_target_change_settles_within_two_seconds():
    engine = SimulatedEngine(c1=20, c2=50, seed=1)
    controller = RateController(target_fps=40)
    engine.run(controller, seconds=10)
    controller.set_target(25)
    frames = engine.run(controller, seconds=6)
    start = frames[0][0]
    settled = [f for f in frames if f[0] - start >= 2000]
    rate = len(settled) / (sum(f[2] for f in settled) / 1000)
    assert rate == pytest.approx(25, rel=0.06)


def test_unreachable_target_sends_everything_to_exit_1():
    engine = SimulatedEngine(c1=20, c2=50)
    controller = RateController(target_fps=100)
    frames = engine.run(controller, seconds=5)
    state = controller.decide()
    assert not state.reachable and state.second_fraction == 0.0
    assert rate_and_share(frames, 2)[1] == 0.0


def test_slow_target_sends_everything_to_exit_2_and_paces():
    engine = SimulatedEngine(c1=20, c2=50)
    controller = RateController(target_fps=10)
    frames = engine.run(controller, seconds=5)
    state = controller.decide()
    assert state.pace and state.reachable and state.second_fraction == 1.0
    assert rate_and_share(frames, 2)[1] == 1.0


def test_invalid_target_is_rejected():
    with pytest.raises(ValueError):
        RateController(target_fps=0)
