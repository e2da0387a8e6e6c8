"""Router refit on exit-2 gain: rank correlation, learning a ranking, and collecting real samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from engine.model.checkpoint import load_model
from engine.model.router import Router
from engine.train.gain_router import GainSamples, _spearman, collect, fit_router


@pytest.mark.parametrize("seed", [0, 1])
def test_spearman_matches_scipy_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 6, 200).astype(float), rng.normal(size=200)
    assert _spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-9)
    assert _spearman(np.zeros(20), b[:20]) == 0.0  # constant scores rank nothing: 0, not NaN


def test_fit_learns_a_gain_hidden_in_the_features() -> None:
    """Gain is a noisy function of two of 24 pooled channels: the refit router's score must rank it,
    easy (high score) where the gain is low."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pooled = rng.normal(size=(600, 24)).astype(np.float32)
    gain = 0.1 * np.tanh(pooled[:, 3] - 0.5 * pooled[:, 7]) + 0.01 * rng.normal(size=600)
    samples = GainSamples(pooled, np.zeros(600), gain)
    router = Router(["a", "b"], {"a": 16, "b": 8})
    result = fit_router(router, samples, steps=400)
    assert result.val_spearman > 0.8 > abs(result.val_spearman_before)
    with torch.no_grad():
        easiness = router.logits_from_pooled(torch.from_numpy(pooled)[:, :, None, None]).sigmoid().numpy()
    assert _spearman(easiness, gain) < -0.8
    assert not router.training


def test_collect_scores_both_exits_of_real_frames(tiny_weights) -> None:
    """Frames without objects are left out; each kept frame has a finite AP at both exits."""
    model = load_model(tiny_weights).model.eval()
    rng = np.random.default_rng(0)
    frames = [(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8),
               np.array([[0, 5, 5, 30, 30]], np.float32) if i % 2 else np.zeros((0, 5), np.float32))
              for i in range(5)]
    samples = collect(model, frames, imgsz=64, batch=2)
    assert len(samples) == 2
    assert samples.pooled.shape == (2, model.router.hidden.in_channels)
    assert np.isfinite(samples.gain).all()
