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


def run_live(controller: RateController, c1: float, c2: float, source_ms: float, seconds: float,
             seed: int = 0) -> list[tuple[float, int]]:
    """A live source: a frame every ``source_ms``; the engine takes the newest one and, when it
    finishes before the next frame is due, waits for it. Returns (time ms, exit) per result."""
    rng = np.random.default_rng(seed)
    clock, last_taken, last_done, level = 0.0, -1, None, 0.5
    results = []
    while clock < seconds * 1000:
        newest = int(clock // source_ms)  # index of the newest frame that has arrived
        if newest <= last_taken:  # nothing new yet: wait for the next frame
            newest = last_taken + 1
            clock = newest * source_ms
        last_taken = newest
        level = float(np.clip(level + rng.normal(0, 0.02), 0.1, 0.9))
        score = float(np.clip(rng.normal(level, 0.15), 0, 1))
        exit_taken = 2 if score < controller.decide().threshold else 1
        cost = (c2 if exit_taken == 2 else c1) + rng.normal(0, 1.0)
        clock += cost
        controller.observe(exit_taken, score, cost, None if last_done is None else clock - last_done, source_ms)
        last_done = clock
        results.append((clock, exit_taken))
    return results


def live_rate_and_share(results: list[tuple[float, int]], last_seconds: float) -> tuple[float, float]:
    end = results[-1][0]
    recent = [r for r in results if r[0] >= end - last_seconds * 1000]
    return len(recent) / last_seconds, float(np.mean([r[1] == 2 for r in recent]))


def test_waiting_for_a_live_source_is_corrected_by_the_feedback():
    # Exit 1 alone keeps up with the 30 fps source, exit 2 alone does 20 fps: the engine waits
    # for frames after fast exit-1 frames, which the cost model alone does not see.
    controller = RateController(target_fps=25, exit1_ms=28, exit2_ms=50)
    results = run_live(controller, c1=28, c2=50, source_ms=1000 / 30, seconds=30)
    rate, share = live_rate_and_share(results, last_seconds=15)
    assert rate == pytest.approx(25, rel=0.05)
    assert 0.1 < share < 0.9


def test_a_target_above_the_source_rate_spends_each_frame_interval_on_exit_2():
    controller = RateController(target_fps=60, exit1_ms=10, exit2_ms=25)
    results = run_live(controller, c1=10, c2=25, source_ms=1000 / 30, seconds=20)
    rate, share = live_rate_and_share(results, last_seconds=10)
    assert rate == pytest.approx(30, rel=0.03)
    assert share > 0.95
    assert not controller.decide().reachable  # the source cannot deliver 60 fps
