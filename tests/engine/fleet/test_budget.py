"""The fleet budget split: one threshold over all nodes, so exit 2 follows difficulty across nodes."""

from __future__ import annotations

import numpy as np
import pytest

from engine.fleet.budget import NodeLoad, split_second_fraction, split_target_fps


def scores(low: float, high: float, n: int = 200, seed: int = 0) -> tuple[float, ...]:
    return tuple(np.random.default_rng(seed).uniform(low, high, n).tolist())


def test_equal_nodes_get_equal_shares():
    nodes = [NodeLoad("a", 20, 40, scores(0, 1, seed=1)), NodeLoad("b", 20, 40, scores(0, 1, seed=2))]
    split = split_target_fps(60.0, nodes)
    assert sum(split.values()) == pytest.approx(60.0, rel=0.03)
    assert split["a"] == pytest.approx(split["b"], rel=0.1)


def test_a_harder_node_gets_a_lower_rate_target_and_the_total_holds():
    calm = NodeLoad("calm", 20, 40, scores(0.6, 1.0, seed=1))
    busy = NodeLoad("busy", 20, 40, scores(0.0, 0.5, seed=2))
    split = split_target_fps(60.0, [calm, busy])
    assert sum(split.values()) == pytest.approx(60.0, rel=0.03)
    assert split["busy"] < 33.0 < split["calm"]  # busy frames take exit 2, calm ones exit 1
    # the scenes swap: the budget follows them
    swapped = split_target_fps(60.0, [NodeLoad("calm", 20, 40, busy.scores), NodeLoad("busy", 20, 40, calm.scores)])
    assert swapped["calm"] < swapped["busy"]


def test_out_of_reach_targets_scale_the_extremes():
    nodes = [NodeLoad("a", 20, 40, scores(0, 1)), NodeLoad("b", 20, 40, scores(0, 1, seed=3))]
    too_fast = split_target_fps(500.0, nodes)  # all exit 1 gives 100
    assert sum(too_fast.values()) == pytest.approx(500.0) and too_fast["a"] == pytest.approx(too_fast["b"])
    too_slow = split_target_fps(10.0, nodes)  # all exit 2 gives 50
    assert sum(too_slow.values()) == pytest.approx(10.0)


def test_supply_caps_a_nodes_rate():
    starved = NodeLoad("starved", 10, 20, scores(0, 1), supply_fps=5.0)
    open_node = NodeLoad("open", 10, 20, scores(0, 1, seed=4))
    split = split_target_fps(80.0, [starved, open_node])
    assert split["starved"] <= 5.0 + 1e-9 and sum(split.values()) == pytest.approx(80.0, rel=0.03)


def test_nodes_without_scores_yet_use_the_fleet_pool():
    split = split_target_fps(60.0, [NodeLoad("new", 20, 40), NodeLoad("old", 20, 40, scores(0, 1))])
    assert split["new"] == pytest.approx(split["old"], rel=0.1)


def test_fixed_share_follows_difficulty():
    calm = NodeLoad("calm", 20, 40, scores(0.6, 1.0, seed=1))
    busy = NodeLoad("busy", 20, 40, scores(0.0, 0.5, seed=2))
    shares = split_second_fraction(0.5, [calm, busy])
    assert shares["busy"] > 0.9 and shares["calm"] < 0.1
    assert split_second_fraction(0.3, [NodeLoad("a", 1, 2)]) == {"a": 0.3}
