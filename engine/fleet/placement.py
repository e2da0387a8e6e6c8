"""Which node runs which camera: by each node's measured capacity, the cameras' rates and pins.

A node's capacity is the frame rate its engine holds at the fleet's expected exit-2 share,
from its measured per-frame costs: ``1000 / (c1 + share * (c2 - c1))`` frames per second
(the rate controller's cost model). A camera asks for its ``fps`` (or :data:`DEFAULT_FPS` when
it has no cap). Cameras are placed one at a time, the most constrained and the fastest first,
on the eligible node that is then the least utilised (asked rate over capacity), so a slow
node ends up with fewer cameras and no node is filled while another idles.

Placement is sticky: cameras already running on a node that is still there stay put, so a
node that leaves moves only its own cameras and a node that (re)joins gets cameras only when
later placements need its headroom. The head node (which also runs the driver) is used only
when no other node is eligible.

Pins: a camera's ``node`` entries must all hold on the node: a bare name is a Ray custom
resource the node was started with (``ray start --resources '{"gate": 1}'``), ``key=value`` a
node label (``ray start --labels zone=gate``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.errors import UserError

#: Frame rate assumed for a camera without an ``fps`` cap when sizing nodes.
DEFAULT_FPS = 15.0


class PlacementError(UserError):
    """A camera that no node can run (its pins match no node)."""


@dataclass(frozen=True)
class NodeCapacity:
    """One node as placement sees it.

    Attributes:
        node_id: Ray's node id.
        exit1_ms, exit2_ms: the node engine's measured time per frame at each exit.
        resources: the node's Ray resources (custom ones serve as pins).
        labels: the node's Ray labels.
        head: the head node, which also carries the driver.
    """

    node_id: str
    exit1_ms: float
    exit2_ms: float
    resources: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    head: bool = False

    def fps_at(self, second_share: float) -> float:
        """Frames per second this node's engine runs at when ``second_share`` of them take exit 2."""
        frame_ms = self.exit1_ms + second_share * max(self.exit2_ms - self.exit1_ms, 0.0)
        return 1000.0 / max(frame_ms, 1e-3)

    def satisfies(self, pins: Sequence[str]) -> bool:
        for pin in pins:
            key, sep, value = pin.partition("=")
            if sep and self.labels.get(key) != value:
                return False
            if not sep and self.resources.get(pin, 0) <= 0:
                return False
        return True


@dataclass(frozen=True)
class CameraDemand:
    """One camera as placement sees it: its name, the rate it asks for, its pins."""

    name: str
    fps: float = DEFAULT_FPS
    pins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placement:
    """Camera name to node id, and what each node was given (frames per second asked of it)."""

    assignment: dict[str, str]
    load: dict[str, float]
    capacity: dict[str, float]

    @property
    def overloaded(self) -> list[str]:
        """Nodes asked for more than they can hold (every eligible node was full)."""
        return sorted(n for n, load in self.load.items() if load > self.capacity[n] + 1e-9)


def check_pins(cameras: Sequence[CameraDemand], nodes: Sequence[NodeCapacity]) -> None:
    """Raise :class:`PlacementError` naming the first camera whose pins no node satisfies."""
    for camera in cameras:
        if camera.pins and not any(node.satisfies(camera.pins) for node in nodes):
            raise PlacementError(f"camera {camera.name}: no node of the cluster has "
                                 f"{', '.join(camera.pins)} (pin by a node's custom resource or key=value label)")


def place(cameras: Sequence[CameraDemand], nodes: Sequence[NodeCapacity], second_share: float = 0.5,
          current: Mapping[str, str] | None = None) -> Placement:
    """Assign every camera to a node.

    Args:
        cameras: the cameras to run (ended ones left out).
        nodes: the nodes that may run them.
        second_share: the exit-2 share capacities are taken at (the fleet's current one).
        current: the assignment so far; cameras on a node still in ``nodes`` keep it.

    Raises:
        PlacementError: a camera that no node can take (pins), or no node at all.
    """
    if not nodes:
        raise PlacementError("no node of the cluster can run cameras (none is alive with a free CPU)")
    check_pins(cameras, nodes)
    by_id = {node.node_id: node for node in nodes}
    capacity = {node.node_id: node.fps_at(second_share) for node in nodes}
    load = dict.fromkeys(by_id, 0.0)
    assignment: dict[str, str] = {}
    current = current or {}
    waiting = []
    for camera in cameras:
        node_id = current.get(camera.name)
        if node_id in by_id and by_id[node_id].satisfies(camera.pins):
            assignment[camera.name] = node_id
            load[node_id] += camera.fps
        else:
            waiting.append(camera)

    def constrained_first(camera: CameraDemand) -> tuple[int, float, str]:
        eligible = sum(node.satisfies(camera.pins) for node in nodes)
        return eligible, -camera.fps, camera.name

    for camera in sorted(waiting, key=constrained_first):
        eligible = [node for node in nodes if node.satisfies(camera.pins)]
        workers = [node for node in eligible if not node.head]
        candidates = workers or eligible
        best = min(candidates, key=lambda n: ((load[n.node_id] + camera.fps) / capacity[n.node_id],
                                              _count(assignment, n.node_id), n.node_id))
        assignment[camera.name] = best.node_id
        load[best.node_id] += camera.fps
    return Placement(assignment, load, capacity)


def _count(assignment: Mapping[str, str], node_id: str) -> int:
    return sum(1 for n in assignment.values() if n == node_id)
