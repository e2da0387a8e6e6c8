"""The readable router score: spread over [0, 1], and not one routing decision changed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.model.calibration import Calibration
from engine.model.score_scale import ScoreScale, readable_calibration


def saturated_scores(n: int = 2000) -> np.ndarray:
    """Raw scores like the bundled router's: logits spread widely, so most sit near 0 or 1."""
    return 1 / (1 + np.exp(-np.random.default_rng(0).normal(-6.0, 5.0, n)))


def test_quantiles_land_near_tenth_half_and_ninetieth():
    raw = saturated_scores()
    fractions = tuple(np.linspace(0, 1, 11))
    table = Calibration(fractions, tuple(np.quantile(raw, fractions)))
    scale, readable = readable_calibration(table)
    mapped = scale.apply(raw)
    assert np.quantile(mapped, [0.1, 0.5, 0.9]) == pytest.approx([0.1, 0.5, 0.9], abs=0.02)
    assert np.quantile(raw, 0.9) - np.quantile(raw, 0.1) > 0.9 or np.quantile(raw, 0.5) < 0.01  # it was saturated
    # Every share routes the same frames before and after: the map is strictly increasing.
    for share in (0.1, 0.3, 0.5, 0.8):
        raw_second = raw < table.threshold_for(share)
        readable_second = mapped < readable.threshold_for(share)
        assert (raw_second == readable_second).mean() > 0.995


def test_identity_and_bad_scales():
    assert ScoreScale().apply(0.3) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        ScoreScale(0.0, 0.0)
    assert readable_calibration(None) == (ScoreScale(), None)


def test_a_frames_batch_maps_like_a_large_array():
    # A frame's few scores are mapped in plain floats, a large array with NumPy: the same numbers.
    scale = ScoreScale(-7.6, 4.7)
    raw = np.concatenate([saturated_scores(64), [0.0, 1.0, 1e-15, 0.5]])
    whole = scale.apply(raw)
    assert len(raw) > 16 and whole.shape == raw.shape
    pieces = np.concatenate([scale.apply(raw[i:i + 4]) for i in range(0, len(raw), 4)])
    assert np.abs(pieces - whole).max() < 1e-12
    assert scale.apply(np.float32(0.25)).shape == () and scale.apply(raw[:3].reshape(3, 1)).shape == (3, 1)
    assert ScoreScale(0.0, 1e-10).apply(np.array([0.1, 0.9])).tolist() == [0.0, 1.0]


@pytest.mark.timeout(180)
def test_the_demo_under_the_controller_spreads_its_scores(tmp_path, capsys):
    """Events of the bundled model on the demo: the middle 80 % of scores span at least 0.3."""
    from app.cli import main

    events = tmp_path / "ev.jsonl"
    code = main(["run", "--backend", "torch", "--target-fps", "30", "--max-frames", "120", "--no-progress",
                 "--events", str(events), "--no-track"])
    assert code == 0, capsys.readouterr().err
    scores = [json.loads(line)["score"] for line in events.read_text().splitlines()]
    low, high = np.quantile(scores, [0.1, 0.9])
    assert high - low >= 0.3, (low, high)
