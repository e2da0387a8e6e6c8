"""One node's engine: the multi-camera :class:`~engine.runtime.monitor.Monitor`, run as a Ray actor.

The actor loads the detector once and keeps it for its whole life; the driver tells it which
cameras to run (:meth:`NodeEngine.run`) and collects what they produced (:meth:`NodeEngine.drain`).
A new set of cameras (cameras moved here from a lost node) replaces the node's Monitor with one
over the union, so the node keeps one engine and one exit-2 allocation across all its cameras;
its own cameras pause for about a second and their recordings go on in a new numbered file.

Results travel to the driver without their pictures (events and metrics need the detections
only); recordings and snapshots are written here, on the node.

The class holds no Ray code: the driver makes it an actor, and tests can drive it directly.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.model.loading import ModelOptions, load_predictor
from engine.runtime.allocation import Allocation
from engine.runtime.frames import Frame, Result
from engine.runtime.monitor import CameraStats, Monitor
from engine.runtime.monitor_config import CameraSettings
from engine.runtime.queues import StreamEnd
from engine.runtime.routing import RoutingMode
from engine.runtime.sinks import SnapshotSaver

logger = logging.getLogger(__name__)

#: Frames timed per exit when the node measures its costs (after two warm-up frames).
COST_FRAMES = 8
#: The recent scores a node reports for the budget split cover this many seconds.
SCORE_SECONDS = 10.0
#: Capacity of the node's result queue: the driver drains it a few times a second.
RESULTS_QUEUE = 4096
#: How long a replaced Monitor may take to hand over its last results.
HANDOVER_SECONDS = 5.0
_NO_IMAGE = np.zeros((0, 0, 3), np.uint8)


@dataclass(frozen=True)
class NodeInfo:
    """What a node's engine measured when it started."""

    exit1_ms: float
    exit2_ms: float
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class NodeReport:
    """What a node sends the driver at each drain.

    Attributes:
        items: ``(camera, Result or StreamEnd)`` in order; results carry no picture.
        stats: every running camera's figures.
        scores: router scores of the last :data:`SCORE_SECONDS`, all cameras pooled.
        processing_fps: results per second over the node, recently.
    """

    items: list
    stats: dict[str, CameraStats]
    scores: tuple[float, ...]
    processing_fps: float


class NodeEngine:
    """The engine of one node (a Ray actor body; plain Python).

    Args:
        model: the model settings (paths are the same on every node).
        weights: the model file, resolved by the driver.
        config: the architecture YAML for reference checkpoints, if any.
        allocation: exit-2 allocation across this node's cameras.
        max_batch: the engine's batch limit (``budget.batch``).
    """

    def __init__(self, model: ModelOptions, weights: str, config: str | None, allocation: Allocation,
                 max_batch: int = 1) -> None:
        loaded = load_predictor(weights, config=config, backend=model.backend, imgsz=model.imgsz, conf=model.conf,
                                iou=model.iou, threads=model.threads,
                                # A node's actor holds its own CPUs: one frame at a time unless told.
                                workers=model.workers or 1)
        self.predictor = loaded.predictor
        self.calibration = loaded.calibration
        self.allocation = allocation
        self.max_batch = max_batch
        self.info = NodeInfo(*self._measure_costs(), loaded.class_names)
        self.monitor: Monitor | None = None
        self.snapshots: dict[str, SnapshotSaver] = {}
        self.cameras: tuple[str, ...] = ()
        self._carry: list = []
        self._scores: deque[tuple[float, float]] = deque(maxlen=20000)

    def describe(self) -> NodeInfo:
        return self.info

    def _measure_costs(self) -> tuple[float, float]:
        """Time per frame at exit 1 and at exit 2, on a grey frame of the model's size.

        The fastest of several runs: what else runs on the machine only ever adds time, and
        placement wants the node's own speed (the rate controller absorbs the load later).
        """
        size = self.predictor.imgsz
        image = np.full((size, size, 3), 114, np.uint8)
        costs = []
        for route in ("first", "second"):
            times = []
            for i in range(COST_FRAMES + 2):
                start = time.perf_counter()
                self.predictor.predict([image], threshold=0.5, route=route)
                if i >= 2:
                    times.append((time.perf_counter() - start) * 1000)
            costs.append(float(np.min(times)))
        return costs[0], max(costs[1], costs[0])

    def run(self, cameras: Sequence[CameraSettings], mode: RoutingMode) -> dict[str, str]:
        """Run exactly ``cameras`` from now on (replacing what ran); returns failures by camera."""
        self._retire()
        self.cameras = tuple(c.name for c in cameras)
        self.snapshots = {c.name: SnapshotSaver(Path(c.snapshot_dir), c.classes)
                          for c in cameras if c.snapshot_dir}
        if not cameras:
            return {}
        monitor = Monitor(cameras, self.predictor, mode, self.allocation, self.calibration,
                          results_queue=RESULTS_QUEUE, max_batch=self.max_batch)
        monitor.start()
        self.monitor = monitor
        return {feed.name: feed.failure for feed in monitor.feeds if feed.failure is not None}

    def set_mode(self, mode: RoutingMode) -> None:
        if self.monitor is not None:
            self.monitor.set_mode(mode)

    def drain(self) -> NodeReport:
        """Everything produced since the last drain."""
        items, self._carry = self._carry, []
        monitor = self.monitor
        if monitor is not None:
            items += self._take(monitor)
        stats = {name: monitor.stats(name) for name in self.cameras} if monitor is not None else {}
        now = time.monotonic()
        while self._scores and self._scores[0][0] < now - SCORE_SECONDS:
            self._scores.popleft()
        fps = sum(s.lane.processing_fps for s in stats.values())
        return NodeReport(items, stats, tuple(score for _, score in self._scores), fps)

    def stop(self) -> bool:
        """Stop every camera (recordings close cleanly)."""
        return self._retire()

    def _retire(self) -> bool:
        """Stop the running Monitor; its last results are kept for the next drain, its ends dropped."""
        monitor, self.monitor = self.monitor, None
        if monitor is None:
            return True
        monitor.stop()
        deadline = time.monotonic() + HANDOVER_SECONDS
        open_cameras = {feed.name for feed in monitor.running}
        while open_cameras and time.monotonic() < deadline:
            for camera, item in self._take(monitor, timeout=0.05):
                if isinstance(item, StreamEnd):
                    open_cameras.discard(camera)
                    if item.reason == "stopped":
                        continue  # a handover, not the camera's end
                self._carry.append((camera, item))
        return monitor.shutdown(timeout=10.0)

    def _take(self, monitor: Monitor, timeout: float = 0.0) -> list:
        """What the Monitor has queued (waiting up to ``timeout`` for the first item)."""
        items: list = []
        while True:
            try:
                if timeout and not items:
                    camera, item = monitor.results.get(timeout=timeout)
                else:
                    camera, item = monitor.results.get_nowait()
            except queue.Empty:
                return items
            if isinstance(item, Result):
                self._scores.append((time.monotonic(), item.detections.router_score))
                saver = self.snapshots.get(camera)
                if saver is not None:
                    saver.offer(item)
                item = _without_picture(item)
            items.append((camera, item))


def _without_picture(result: Result) -> Result:
    frame = result.frame
    return replace(result, frame=Frame(frame.index, frame.pts, frame.wall_time, _NO_IMAGE, frame.source_id),
                   extra={"engine_ms": result.extra.get("engine_ms", 0.0)})
