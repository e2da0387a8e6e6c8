"""The fleet's one budget split over its nodes, so exit 2 still goes to the fleet's hardest frames.

Each node's engine holds its own share of the budget with its own rate controller and
allocates it over its own cameras (``global`` allocation inside the node). What the driver
decides is the split between nodes. With one fleet-wide easiness threshold ``t`` (frames
scoring below it take exit 2, as the single-machine ``global`` allocation does), node ``n``
sends ``s_n(t)`` of its frames to exit 2 (the fraction of its recent router scores below
``t``) and runs at ``r_n(t) = 1000 / (c1_n + s_n(t) * (c2_n - c1_n))`` frames per second,
at most what its cameras supply. The total ``R(t)`` falls as ``t`` rises; the split takes the
highest ``t`` whose ``R(t)`` still reaches ``target_fps`` and gives node ``n`` the target
``r_n(t)``. A node whose scenes turn harder then gets a lower frame-rate target (more of its
frames take exit 2) and the others a higher one: budget moves, cameras stay.

With a fixed ``second_fraction`` the same threshold is taken at the fleet's pooled share
and each node gets ``s_n(t)`` as its own share. Pure functions, tested with made-up scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NodeLoad:
    """One node's figures for the split.

    Attributes:
        node_id: Ray's node id.
        exit1_ms, exit2_ms: measured time per frame at each exit.
        scores: its recent router scores (easiness; low means hard), all cameras pooled.
        supply_fps: the most frames per second its cameras can deliver (None: no limit known).
    """

    node_id: str
    exit1_ms: float
    exit2_ms: float
    scores: tuple[float, ...] = ()
    supply_fps: float | None = None

    def share_below(self, threshold: float, fallback: float) -> float:
        if not self.scores:
            return fallback
        return float(np.mean(np.asarray(self.scores) < threshold))

    def rate_at(self, share: float) -> float:
        frame_ms = self.exit1_ms + share * max(self.exit2_ms - self.exit1_ms, 0.0)
        rate = 1000.0 / max(frame_ms, 1e-3)
        return rate if self.supply_fps is None else min(rate, self.supply_fps)


def _candidates(nodes: Sequence[NodeLoad]) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds worth trying (every pooled score, plus all-exit-1 and all-exit-2), and the pool."""
    pooled = np.asarray([s for node in nodes for s in node.scores], dtype=float)
    thresholds = np.unique(np.concatenate([pooled, [0.0, 1.0 + 1e-6]]))
    return thresholds, pooled


def _shares(nodes: Sequence[NodeLoad], threshold: float, pooled: np.ndarray) -> list[float]:
    fallback = float(np.mean(pooled < threshold)) if pooled.size else min(max(threshold, 0.0), 1.0)
    return [node.share_below(threshold, fallback) for node in nodes]


def split_target_fps(target_fps: float, nodes: Sequence[NodeLoad]) -> dict[str, float]:
    """Each node's frame-rate target; together they make ``target_fps`` where the nodes can.

    When even all-exit-1 falls short, or all-exit-2 overshoots, every node's rate at that
    extreme is scaled to the total, so each controller then settles at that extreme.
    """
    if not nodes:
        return {}
    thresholds, pooled = _candidates(nodes)
    best = None
    for threshold in thresholds:  # R(t) falls as t rises: keep the last t that still reaches the target
        rates = [node.rate_at(share) for node, share in zip(nodes, _shares(nodes, threshold, pooled))]
        if best is None or sum(rates) >= target_fps:
            best = rates
        else:
            break
    total = sum(best)
    if total < target_fps or _all_second_overshoots(nodes, target_fps):
        best = [rate * target_fps / total for rate in best]
    return {node.node_id: rate for node, rate in zip(nodes, best)}


def _all_second_overshoots(nodes: Sequence[NodeLoad], target_fps: float) -> bool:
    return sum(node.rate_at(1.0) for node in nodes) > target_fps


def split_second_fraction(share: float, nodes: Sequence[NodeLoad]) -> dict[str, float]:
    """Each node's exit-2 share for a fleet-wide share: one threshold over the pooled scores."""
    if not nodes:
        return {}
    _, pooled = _candidates(nodes)
    if not pooled.size or share <= 0.0 or share >= 1.0:
        return {node.node_id: share for node in nodes}
    threshold = float(np.quantile(pooled, share))
    return {node.node_id: s for node, s in zip(nodes, _shares(nodes, threshold, pooled))}
