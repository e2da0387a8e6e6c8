"""Difficulty settings, the true-difficulty score and the schedule used by videos."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.synthetic.difficulty import (
    TRUE_DIFFICULTY_WEIGHTS,
    DifficultySchedule,
    sample_difficulty,
    sample_scene_params,
    true_difficulty,
)


def _score(**overrides: float) -> float:
    easy = dict(num_objects=1, min_object_size=120.0, short_side=320, mean_occlusion=0.0, contrast=0.5,
                noise=0.0, blur=0.0, num_distractors=0, busyness=0.0)
    return true_difficulty(**{**easy, **overrides})


def test_true_difficulty_spans_zero_to_one() -> None:
    assert sum(TRUE_DIFFICULTY_WEIGHTS.values()) == pytest.approx(1.0)
    assert _score() == pytest.approx(TRUE_DIFFICULTY_WEIGHTS["count"] * np.log(2) / np.log(21))
    hardest = _score(num_objects=40, min_object_size=6.0, mean_occlusion=0.7, contrast=0.02, noise=0.1,
                     blur=2.0, num_distractors=50, busyness=1.0)
    assert hardest == pytest.approx(1.0)


@pytest.mark.parametrize(
    "change", [{"num_objects": 20}, {"min_object_size": 10.0}, {"mean_occlusion": 0.4}, {"contrast": 0.1},
               {"noise": 0.03}, {"blur": 1.0}, {"num_distractors": 20}]
)
def test_each_factor_raises_the_score(change: dict) -> None:
    assert _score(**change) > _score()


def test_scene_params_follow_the_scalar_and_reject_bad_values() -> None:
    rng = np.random.default_rng(0)
    easy = [sample_scene_params(0.0, rng) for _ in range(20)]
    hard = [sample_scene_params(1.0, rng) for _ in range(20)]
    assert all(1 <= p.num_objects <= 4 and p.num_distractors == 0 for p in easy)
    assert all(p.num_objects >= 8 for p in hard)
    assert max(p.size_range[1] for p in hard) < min(p.size_range[0] for p in easy)
    with pytest.raises(ValueError, match="difficulty"):
        sample_scene_params(1.5, rng)


def test_sampled_difficulties_cover_both_ends() -> None:
    rng = np.random.default_rng(0)
    values = np.array([sample_difficulty(rng) for _ in range(500)])
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert (values < 0.1).mean() > 0.1 and (values > 0.9).mean() > 0.1


def test_schedule_is_smooth_with_calm_and_busy_stretches() -> None:
    schedule = DifficultySchedule.sample(np.random.default_rng(3), duration_s=30.0)
    values = np.array([schedule(t) for t in np.arange(0.0, 30.0, 1.0 / 15.0)])
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert np.abs(np.diff(values)).max() < 0.05
    assert (values < 0.35).any() and (values > 0.6).any()


@pytest.mark.parametrize("level_range", [(0.0, 0.3), (0.7, 1.0), (0.45, 0.45)])
def test_schedule_stays_within_its_range(level_range: tuple[float, float]) -> None:
    schedule = DifficultySchedule.sample(np.random.default_rng(3), duration_s=30.0, level_range=level_range)
    values = np.array([schedule(t) for t in np.arange(0.0, 40.0, 1.0 / 15.0)])
    assert values.min() >= level_range[0] and values.max() <= level_range[1]


def test_full_range_keeps_the_unranged_schedule() -> None:
    default = DifficultySchedule.sample(np.random.default_rng(4), duration_s=20.0)
    full = DifficultySchedule.sample(np.random.default_rng(4), duration_s=20.0, level_range=(0.0, 1.0))
    assert np.array_equal(default.levels, full.levels) and np.array_equal(default.times, full.times)


@pytest.mark.parametrize("level_range", [(0.6, 0.2), (-0.1, 0.5), (0.5, 1.1), (float("nan"), 1.0)])
def test_bad_ranges_are_refused(level_range: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="0 <= low <= high <= 1"):
        DifficultySchedule.sample(np.random.default_rng(0), duration_s=5.0, level_range=level_range)
