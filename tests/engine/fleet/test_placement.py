"""Placement by measured capacity, camera rates and pins; sticky across node losses."""

from __future__ import annotations

import pytest

from engine.fleet.placement import CameraDemand, NodeCapacity, PlacementError, place


def node(node_id: str, exit1_ms: float = 20.0, exit2_ms: float = 40.0, head: bool = False, **kwargs) -> NodeCapacity:
    return NodeCapacity(node_id, exit1_ms, exit2_ms, head=head, **kwargs)


def cameras(*rates: float) -> list[CameraDemand]:
    return [CameraDemand(f"cam{i}", rate) for i, rate in enumerate(rates)]


def per_node(assignment: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node_id in assignment.values():
        counts[node_id] = counts.get(node_id, 0) + 1
    return counts


def test_equal_nodes_share_the_cameras_and_the_head_is_spared():
    placement = place(cameras(10, 10, 10, 10), [node("head", head=True), node("a"), node("b")])
    assert per_node(placement.assignment) == {"a": 2, "b": 2}
    assert placement.load == {"head": 0.0, "a": 20.0, "b": 20.0} and not placement.overloaded


def test_a_slow_node_gets_fewer_cameras():
    # a: 1000 / 30 = 33 fps at share 0.5; slow: 1000 / 120 = 8.3 fps
    placement = place(cameras(8, 8, 8, 8, 8), [node("a"), node("slow", exit1_ms=80, exit2_ms=160)],
                      second_share=0.5)
    assert per_node(placement.assignment) == {"a": 4, "slow": 1} and not placement.overloaded


def test_overload_is_reported_not_refused():
    placement = place(cameras(30, 30), [node("a")], second_share=0.0)  # 50 fps for 60 asked
    assert per_node(placement.assignment) == {"a": 2} and placement.overloaded == ["a"]


def test_only_the_lost_nodes_cameras_move():
    nodes = [node("a"), node("b")]
    first = place(cameras(10, 10, 10, 10), nodes)
    survivors = [n for n in nodes if n.node_id == "b"]
    second = place(cameras(10, 10, 10, 10), survivors, current=first.assignment)
    assert set(second.assignment.values()) == {"b"}
    moved = {c for c in first.assignment if first.assignment[c] != second.assignment[c]}
    assert moved == {c for c, n in first.assignment.items() if n == "a"}
    # a node that comes back takes nothing from cameras that are running fine
    third = place(cameras(10, 10, 10, 10), [node("a"), node("b")], current=second.assignment)
    assert third.assignment == second.assignment


def test_pins_by_resource_and_label():
    nodes = [node("a", resources={"CPU": 1, "gate": 1}), node("b", labels={"zone": "yard"}), node("c")]
    demands = [CameraDemand("gate", 10, ("gate",)), CameraDemand("yard", 10, ("zone=yard",)),
               CameraDemand("free1", 10), CameraDemand("free2", 10), CameraDemand("free3", 10)]
    placement = place(demands, nodes)
    assert placement.assignment["gate"] == "a" and placement.assignment["yard"] == "b"
    assert sorted(per_node(placement.assignment).values()) == [1, 2, 2]


def test_a_pin_no_node_has_names_the_camera():
    with pytest.raises(PlacementError, match=r"camera dock: no node of the cluster has usb-dock"):
        place([CameraDemand("ok"), CameraDemand("dock", 10, ("usb-dock",))], [node("a"), node("b")])
    with pytest.raises(PlacementError, match="no node"):
        place(cameras(10), [])


def test_a_pinned_camera_goes_to_the_head_when_only_the_head_has_it():
    placement = place([CameraDemand("usb", 10, ("webcam",))], [node("h", head=True, resources={"webcam": 1}),
                                                               node("a")])
    assert placement.assignment == {"usb": "h"}
