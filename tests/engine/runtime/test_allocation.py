"""One exit-2 budget over several cameras: global pooling against equal per-camera shares."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.allocation import Allocator
from engine.runtime.routing import RoutingMode


def feed(allocator: Allocator, camera: str, scores) -> None:
    """Past frames' scores; the exits recorded are not the allocator's own, so the fixed-share
    correction they would build up is reset (setting the mode again starts it afresh)."""
    for score in scores:
        allocator.observe(camera, 1, float(score), 10.0)
    allocator.set_mode(allocator.mode)


def second_share(allocator: Allocator, camera: str, scores) -> float:
    threshold = allocator.decide(camera).threshold
    return float(np.mean(np.asarray(scores) < threshold))


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    return {"calm": rng.uniform(0.6, 1.0, 100), "busy": rng.uniform(0.0, 0.4, 100)}


def test_global_sends_the_fleets_hardest_frames_to_exit_2(scores):
    allocator = Allocator(RoutingMode("second_fraction", 0.5), "global", ["calm", "busy"])
    for camera, values in scores.items():
        feed(allocator, camera, values)
    assert second_share(allocator, "busy", scores["busy"]) == pytest.approx(1.0, abs=0.03)
    assert second_share(allocator, "calm", scores["calm"]) == pytest.approx(0.0, abs=0.03)


def test_per_camera_gives_every_camera_the_same_share(scores):
    allocator = Allocator(RoutingMode("second_fraction", 0.25), "per-camera", ["calm", "busy"])
    for camera, values in scores.items():
        feed(allocator, camera, values)
    for camera, values in scores.items():
        assert second_share(allocator, camera, values) == pytest.approx(0.25, abs=0.03)


def test_a_new_camera_borrows_the_pooled_scores_until_it_has_its_own(scores):
    allocator = Allocator(RoutingMode("second_fraction", 0.5), "per-camera", ["calm", "new"])
    feed(allocator, "calm", scores["calm"])
    pooled = allocator.decide("calm").threshold
    assert allocator.decide("new").threshold == pytest.approx(pooled)
    feed(allocator, "new", scores["busy"][:20])
    assert allocator.decide("new").threshold < 0.4


@pytest.mark.parametrize("allocation", ["global", "per-camera"])
def test_fixed_modes_ignore_the_allocation(allocation):
    allocator = Allocator(RoutingMode("threshold", 0.3), allocation, ["a", "b"])
    feed(allocator, "a", [0.9] * 20)
    assert allocator.decide("b").threshold == 0.3 and allocator.decide("b").route == "auto"
    allocator.set_mode(RoutingMode("second"))
    assert allocator.decide("a").route == "second"


def test_target_fps_shares_one_controller_and_reports_the_camera_threshold(scores):
    allocator = Allocator(RoutingMode("target_fps", 50.0), "per-camera", ["calm", "busy"])
    for camera, values in scores.items():
        for score in values:
            allocator.observe(camera, 1, float(score), 10.0)  # exit 1 at 10 ms: 100 fps, budget 20 ms
            allocator.observe(camera, 2, float(score), 30.0)
    decision = allocator.decide("busy")
    assert decision.controller is not None and 0 < decision.controller.second_fraction < 1
    assert decision.controller.threshold == decision.threshold
    assert decision.threshold < 0.4 < allocator.decide("calm").threshold


def test_rejects_unknown_allocation_and_no_cameras():
    with pytest.raises(ValueError, match="allocation"):
        Allocator(RoutingMode("first"), "pooled", ["a"])
    with pytest.raises(ValueError, match="camera"):
        Allocator(RoutingMode("first"), "global", [])


def test_global_caps_every_camera_at_twice_the_fleets_share():
    """Two busy cameras whose scores sit apart: uncapped pooling would give the lower one all its
    frames and the other none; capped, the lower one stops at twice the share and the rest of the
    budget goes to the other's hardest frames, the calm camera's scores being higher still."""
    rng = np.random.default_rng(1)
    scores = {"busy1": rng.uniform(0.0, 0.1, 120), "busy2": rng.uniform(0.2, 0.3, 120),
              "calm": rng.uniform(0.6, 1.0, 120)}
    allocator = Allocator(RoutingMode("second_fraction", 0.25), "global", list(scores))
    for camera, values in scores.items():
        feed(allocator, camera, values)
    shares = {camera: second_share(allocator, camera, values) for camera, values in scores.items()}
    assert shares["busy1"] == pytest.approx(0.5, abs=0.02)
    assert shares["busy2"] == pytest.approx(0.25, abs=0.03)
    assert shares["calm"] == 0.0
    assert sum(shares.values()) / 3 == pytest.approx(0.25, abs=0.02)


def test_global_without_a_binding_cap_is_the_pooled_quantile(scores):
    """At half the frames the cap (twice the share) allows every frame: plain pooling."""
    allocator = Allocator(RoutingMode("second_fraction", 0.5), "global", list(scores))
    for camera, values in scores.items():
        feed(allocator, camera, values)
    assert allocator.decide("calm").threshold == pytest.approx(allocator.pooled.quantile(0.5))


@pytest.mark.parametrize("allocation", ["global", "per-camera"])
def test_fixed_share_is_kept_while_the_scene_drifts(allocation):
    """Scores that fall frame after frame lie below any quantile of the past ones: uncorrected, every
    frame would take exit 2. The integral correction holds the share asked."""
    allocator = Allocator(RoutingMode("second_fraction", 0.25), allocation, ["a", "b"])
    taken = []
    for step in range(2000):
        for camera in ("a", "b"):
            score = 1.0 - step / 2000 + (0.001 if camera == "b" else 0.0)
            exit_taken = 2 if score < allocator.decide(camera).threshold else 1
            allocator.observe(camera, exit_taken, score, 10.0)
            taken.append(exit_taken == 2)
    assert np.mean(taken[-1000:]) == pytest.approx(0.25, abs=0.03)


def test_fixed_share_of_a_steady_scene_stays_near_its_quantile(scores):
    allocator = Allocator(RoutingMode("second_fraction", 0.3), "per-camera", ["calm"])
    rng = np.random.default_rng(3)
    taken = []
    for _ in range(3000):
        score = float(rng.uniform())
        exit_taken = 2 if score < allocator.decide("calm").threshold else 1
        allocator.observe("calm", exit_taken, score, 10.0)
        taken.append(exit_taken == 2)
    assert np.mean(taken[500:]) == pytest.approx(0.3, abs=0.02)
