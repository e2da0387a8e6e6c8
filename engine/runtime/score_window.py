"""Recent router scores with cheap quantiles and ranks: the controller and the allocator ask for
both on every frame, so the window is kept sorted as it slides (``bisect`` on a list of at most a
few thousand floats: microseconds, where ``np.quantile`` over a fresh array costs a hundred)."""

from __future__ import annotations

import bisect
from collections import deque


class ScoreWindow:
    """The last ``maxlen`` scores, in arrival order and sorted.

    :meth:`quantile` matches ``numpy.quantile``'s default (linear) interpolation.
    """

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        self.maxlen = maxlen
        self._order: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self):
        return iter(self._order)

    def append(self, score: float) -> None:
        score = float(score)
        if len(self._order) == self.maxlen:
            oldest = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self._order.append(score)
        bisect.insort(self._sorted, score)

    @property
    def sorted(self) -> list[float]:
        """The scores in ascending order (the window's own list: do not modify)."""
        return self._sorted

    def below(self, threshold: float) -> int:
        """How many scores are below ``threshold``."""
        return bisect.bisect_left(self._sorted, threshold)

    def quantile(self, p: float) -> float:
        """The ``p``-quantile (0..1) of the window; the window must not be empty."""
        values = self._sorted
        position = min(max(p, 0.0), 1.0) * (len(values) - 1)
        low = int(position)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (position - low)

    def rank(self, score: float) -> float:
        """Share of the window below ``score``, ties counted half (0..1); the window must not be empty."""
        below = bisect.bisect_left(self._sorted, score)
        equal = bisect.bisect_right(self._sorted, score) - below
        return (below + 0.5 * equal) / len(self._sorted)
