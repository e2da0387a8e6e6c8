"""The tracker's compiled Kalman steps equal the NumPy arithmetic they replaced, bit for bit."""

from __future__ import annotations

import numpy as np

from engine.tracking.kalman_kernels import predict_boxes, state_boxes


def numpy_boxes(means: np.ndarray) -> np.ndarray:
    out = np.empty((len(means), 4))
    out[:, 3] = means[:, 3]
    out[:, 2] = means[:, 2] * means[:, 3]
    out[:, :2] = means[:, :2] - out[:, 2:] / 2
    out[:, 2:] += out[:, :2]
    return out


def numpy_predict(mean, cov, rows, lost, scale, floor):
    means, covs = mean[rows], cov[rows]
    means[lost, 7] = 0
    noise = (means[:, 3:4] * scale) ** 2 + floor
    means[:, :4] += means[:, 4:]
    covs[:, :4, :] += covs[:, 4:, :]
    covs[:, :, :4] += covs[:, :, 4:]
    covs[:, np.arange(8), np.arange(8)] += noise
    mean[rows], cov[rows] = means, covs
    return numpy_boxes(means)


def test_predict_and_boxes_equal_numpy_bit_for_bit():
    rng = np.random.default_rng(7)
    scale, floor = rng.uniform(0, 0.1, 8), rng.uniform(0, 1e-3, 8)
    for tracks in (0, 1, 6):
        mean = rng.normal(100, 50, (tracks + 3, 8))
        cov = rng.normal(0, 5, (tracks + 3, 8, 8))
        rows = rng.permutation(tracks + 3)[:tracks].astype(np.int64)
        lost = rng.uniform(size=tracks) < 0.5
        mean_np, cov_np = mean.copy(), cov.copy()
        got = predict_boxes(mean, cov, rows, lost, scale, floor)
        want = numpy_predict(mean_np, cov_np, rows, lost, scale, floor)
        assert np.array_equal(got, want)
        assert np.array_equal(mean, mean_np) and np.array_equal(cov, cov_np)  # in place, untouched rows kept
        assert np.array_equal(state_boxes(mean, rows), numpy_boxes(mean[rows]))
