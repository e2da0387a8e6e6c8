"""The tracker's compiled Kalman steps equal the NumPy arithmetic they replaced, bit for bit."""

from __future__ import annotations

import numpy as np

from engine.tracking.kalman_kernels import correct, predict_boxes, state_boxes


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


def test_correct_equals_numpy_to_rounding():
    rng = np.random.default_rng(8)
    scale, floor = rng.uniform(0, 0.1, 4), rng.uniform(0, 1e-2, 4)
    mean = rng.normal(100, 30, (5, 8))
    mean[:, 3] = rng.uniform(20, 80, 5)  # heights
    factors = rng.normal(0, 1, (5, 8, 8))
    cov = factors @ factors.transpose(0, 2, 1) + np.eye(8)  # symmetric positive definite
    rows = np.array([3, 0, 4], np.int64)
    measured = mean[rows, :4] + rng.normal(0, 2, (3, 4))
    # The batched NumPy form the kernel replaced.
    means, covs = mean[rows], cov[rows]
    s = covs[:, :4, :4] + np.stack([np.diag(d) for d in (means[:, 3:4] * scale) ** 2 + floor])
    gain = np.linalg.solve(s, covs[:, :4, :]).transpose(0, 2, 1)
    want_mean = means + np.einsum("nij,nj->ni", gain, measured - means[:, :4])
    want_cov = covs - gain @ s @ gain.transpose(0, 2, 1)
    untouched = mean[[1, 2]].copy(), cov[[1, 2]].copy()
    correct(mean, cov, rows, measured, scale, floor)
    np.testing.assert_allclose(mean[rows], want_mean, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(cov[rows], want_cov, rtol=1e-12, atol=1e-9)
    assert np.array_equal(mean[[1, 2]], untouched[0]) and np.array_equal(cov[[1, 2]], untouched[1])
