"""Whole-run latency statistics: right within their resolution, constant in memory."""

import numpy as np
import pytest

from engine.runtime.latency import LatencyHistogram


def test_percentiles_and_mean_match_the_exact_values_within_one_percent():
    values = np.random.default_rng(0).lognormal(mean=3.0, sigma=0.8, size=20_000)
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(float(value))
    assert histogram.count == len(values)
    assert histogram.mean == pytest.approx(values.mean(), rel=1e-9)
    for q in (50, 95, 99):
        assert histogram.percentile(q) == pytest.approx(np.percentile(values, q), rel=0.011)


def test_out_of_range_values_are_kept_and_empty_is_zero():
    histogram = LatencyHistogram(low_ms=1.0, high_ms=100.0)
    assert histogram.percentile(95) == 0.0 and histogram.mean == 0.0
    histogram.add(0.01)
    histogram.add(10_000.0)
    assert histogram.count == 2
    assert histogram.percentile(0) < 1.1 and histogram.percentile(100) > 99.0
    with pytest.raises(ValueError):
        LatencyHistogram(low_ms=5.0, high_ms=1.0)
