"""The fleet's own Prometheus series (per node, moves, lost nodes), served beside the per-camera ones."""

from __future__ import annotations

from collections.abc import Sequence

from engine.runtime.routing import RoutingMode


class FleetMetrics:
    """Registers on the driver's existing registry, so one ``--metrics-port`` shows the whole fleet.

    Args:
        registry: the per-camera metrics' registry.
        cameras: the camera names (each shows ``moves`` 0 from the start).
    """

    def __init__(self, registry, cameras: Sequence[str]) -> None:
        from prometheus_client import Gauge

        def gauge(name: str, text: str, labels: Sequence[str]) -> Gauge:
            return Gauge(f"dynastream_{name}", text, list(labels), registry=registry)

        self.up = gauge("node_up", "1 while the node's engine answers", ["node"])
        self.cameras = gauge("node_cameras", "cameras running on the node", ["node"])
        self.target = gauge("node_target_fps", "the node's share of the frame-rate budget (0: not a rate budget)",
                            ["node"])
        self.fps = gauge("node_processing_fps", "frames the node processes per second", ["node"])
        self.exit_ms = gauge("node_exit_ms", "the node engine's measured time per frame at each exit",
                             ["node", "exit"])
        self.moves = gauge("camera_moves", "times the camera moved to another node", ["camera"])
        self.lost = Gauge("dynastream_fleet_nodes_lost", "nodes lost during the run", registry=registry)
        for name in cameras:
            self.moves.labels(name).set(0)

    def update_node(self, node: str, cameras: int, mode: RoutingMode | None, processing_fps: float,
                    exit1_ms: float, exit2_ms: float) -> None:
        self.up.labels(node).set(1)
        self.cameras.labels(node).set(cameras)
        self.target.labels(node).set(mode.value if mode is not None and mode.kind == "target_fps" else 0)
        self.fps.labels(node).set(processing_fps)
        self.exit_ms.labels(node, "1").set(exit1_ms)
        self.exit_ms.labels(node, "2").set(exit2_ms)

    def node_lost(self, node: str, lost: int) -> None:
        self.up.labels(node).set(0)
        self.cameras.labels(node).set(0)
        self.fps.labels(node).set(0)
        self.lost.set(lost)

    def moved(self, camera: str, moves: int) -> None:
        self.moves.labels(camera).set(moves)
