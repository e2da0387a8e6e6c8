"""The tracker's per-frame Kalman arithmetic, compiled (Numba): the predict and correct steps of
a set of tracks and the boxes of their states.

NumPy ran each as a dozen small calls on a few tracks (fancy-indexed copies in and out of the
state arrays, block sums, the noise on the diagonal), on the tracking thread, which holds the
GIL the engine's workers need between their inference calls. The loops here do the same float64
operations in the same order, in place on the tracker's arrays, so the predicted states and the
boxes are bit-identical to the NumPy steps they replace; the correction differs in the last bits
(see :func:`correct`).

Cached beside this module like :mod:`engine.model.box_kernels`; ``make setup`` compiles it.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def predict_boxes(mean: np.ndarray, cov: np.ndarray, rows: np.ndarray, lost: np.ndarray,
                  noise_scale: np.ndarray, noise_floor: np.ndarray) -> np.ndarray:
    """One constant-velocity step, in place, for the tracks at ``rows`` of ``mean`` ``[T, 8]`` and
    ``cov`` ``[T, 8, 8]`` (a ``lost`` track's height stops changing); their predicted xyxy boxes.

    Per track: ``F = [[I, I], [0, I]]`` moves each position component by its velocity, ``F P F^T``
    is the block sums rows then columns, and the process noise, ``(height x scale)^2 + floor``
    from the height before the step, is added to the diagonal.
    """
    boxes = np.empty((rows.shape[0], 4))
    for n in range(rows.shape[0]):
        r = rows[n]
        if lost[n]:
            mean[r, 7] = 0.0
        height = mean[r, 3]
        for k in range(4):
            mean[r, k] += mean[r, k + 4]
        for i in range(4):
            for j in range(8):
                cov[r, i, j] += cov[r, i + 4, j]
        for i in range(8):
            for j in range(4):
                cov[r, i, j] += cov[r, i, j + 4]
        for k in range(8):
            cov[r, k, k] += (height * noise_scale[k]) ** 2 + noise_floor[k]
        _box(mean, r, boxes, n)
    return boxes


@numba.njit(cache=True)
def correct(mean: np.ndarray, cov: np.ndarray, rows: np.ndarray, measured: np.ndarray,
            noise_scale: np.ndarray, noise_floor: np.ndarray) -> None:
    """The Kalman correction, in place, of the tracks at ``rows`` with their measured boxes
    ``[n, 4]`` (centre x, centre y, aspect, height); measurement noise ``(height x scale)^2 +
    floor`` on the innovation covariance's diagonal.

    Not bit-identical to the batched NumPy form it replaced (matrix products sum in another
    order): states differ in the last bits, ids are the same (the tracker's tests).
    """
    for n in range(rows.shape[0]):
        r = rows[n]
        height = mean[r, 3]
        innovation_cov = np.empty((4, 4))
        for i in range(4):
            for j in range(4):
                innovation_cov[i, j] = cov[r, i, j]
            innovation_cov[i, i] += (height * noise_scale[i]) ** 2 + noise_floor[i]
        gain_t = np.linalg.solve(innovation_cov, np.ascontiguousarray(cov[r, :4, :]))  # K^T = S^-1 H P
        gain = np.ascontiguousarray(gain_t.T)
        residual = measured[n] - mean[r, :4]
        mean[r] += gain @ residual
        cov[r] -= gain @ innovation_cov @ gain_t


@numba.njit(cache=True)
def state_boxes(mean: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The xyxy boxes of the states at ``rows`` of ``mean`` ``[T, 8]`` (centre, aspect, height...)."""
    boxes = np.empty((rows.shape[0], 4))
    for n in range(rows.shape[0]):
        _box(mean, rows[n], boxes, n)
    return boxes


@numba.njit(cache=True, inline="always")
def _box(mean: np.ndarray, r: int, boxes: np.ndarray, n: int) -> None:
    height = mean[r, 3]
    width = mean[r, 2] * height
    left = mean[r, 0] - width / 2
    top = mean[r, 1] - height / 2
    boxes[n, 0] = left
    boxes[n, 1] = top
    boxes[n, 2] = width + left
    boxes[n, 3] = height + top


def compile_now() -> None:
    """Compile (or load from the cache) now, not on a tracked camera's first frame."""
    mean, cov, rows = np.zeros((1, 8)), np.zeros((1, 8, 8)), np.zeros(1, np.int64)
    predict_boxes(mean, cov, rows, np.zeros(1, np.bool_), np.zeros(8), np.zeros(8))
    correct(mean, cov + np.eye(8), rows, np.zeros((1, 4)), np.zeros(4), np.zeros(4))
    state_boxes(mean, rows)
