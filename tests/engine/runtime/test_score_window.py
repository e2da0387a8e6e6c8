"""The sliding, sorted score window gives numpy's quantiles and exact ranks."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtime.score_window import ScoreWindow


def test_quantiles_and_ranks_match_numpy_as_the_window_slides():
    rng = np.random.default_rng(0)
    window, values = ScoreWindow(50), []
    for score in np.round(rng.random(400), 2):  # rounding makes ties
        window.append(score)
        values = ([*values, float(score)])[-50:]
        assert list(window) == values
        for p in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
            assert window.quantile(p) == pytest.approx(float(np.quantile(values, p)))
        probe = float(rng.random())
        arr = np.asarray(values)
        assert window.rank(probe) == pytest.approx(((arr < probe).sum() + 0.5 * (arr == probe).sum()) / len(arr))


def test_bad_size():
    with pytest.raises(ValueError):
        ScoreWindow(0)
