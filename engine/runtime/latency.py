"""Whole-run latency statistics in constant memory, for runs that last hours or days."""

from __future__ import annotations

import math

import numpy as np


class LatencyHistogram:
    """Mean and percentiles of every latency ever added, within ``resolution`` relative error.

    Values fall into log-spaced bins (1% wide by default) between ``low_ms`` and ``high_ms``;
    values outside land in the first or last bin. Memory stays a few kilobytes however long
    the run, where keeping every value would grow by megabytes a day.
    """

    def __init__(self, low_ms: float = 0.1, high_ms: float = 600_000.0, resolution: float = 0.01) -> None:
        if not 0 < low_ms < high_ms or resolution <= 0:
            raise ValueError("need 0 < low_ms < high_ms and a positive resolution")
        self._log_low = math.log(low_ms)
        self._log_step = math.log1p(resolution)
        self._counts = np.zeros(math.ceil((math.log(high_ms) - self._log_low) / self._log_step) + 1, np.int64)
        self._total = 0.0
        self.count = 0

    def add(self, value_ms: float) -> None:
        index = int((math.log(max(value_ms, 1e-9)) - self._log_low) / self._log_step)
        self._counts[min(max(index, 0), len(self._counts) - 1)] += 1
        self._total += value_ms
        self.count += 1

    @property
    def mean(self) -> float:
        return self._total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100), reported at the middle of its bin; 0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q / 100 * self.count))
        index = int(np.searchsorted(np.cumsum(self._counts), rank))
        return math.exp(self._log_low + (index + 0.5) * self._log_step)
