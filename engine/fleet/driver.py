"""The fleet's driver: places cameras on nodes, supervises the node engines, splits the budget.

It looks like a :class:`~engine.runtime.monitor.Monitor` to its consumer (``results``,
``stats``, ``camera_names``, ``feeds``, ``start``, ``shutdown``), so the ``monitor`` command's
loop, event logs, metrics and summary serve both.

Supervision is the driver's own, not Ray's actor restarts: a supervision thread keeps one
``drain`` call in flight per node (every :data:`POLL_SECONDS`); a call that fails (the actor or
its node died) or stays unanswered for :data:`NODE_TIMEOUT` seconds loses the node: its actor is
killed and its cameras are placed on the surviving nodes, whose engines restart with the union.
The reaction time is then bounded by this loop, whatever Ray's node health checks are set to,
and the moved cameras land where capacity is rather than back on a node that came back.

The budget is split again every :data:`REBALANCE_SECONDS` from each node's router scores of
the last :data:`engine.fleet.node.SCORE_SECONDS` (see :mod:`engine.fleet.budget`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.errors import UserError
from engine.fleet.budget import NodeLoad, split_second_fraction, split_target_fps
from engine.fleet.cluster import NodeView, alive_nodes
from engine.fleet.metrics import FleetMetrics
from engine.fleet.node import NodeEngine, NodeInfo, NodeReport
from engine.fleet.placement import DEFAULT_FPS, CameraDemand, NodeCapacity, check_pins, place
from engine.runtime.capture import CaptureStats
from engine.runtime.monitor import CameraStats
from engine.runtime.monitor_config import CameraSettings, MonitorConfig
from engine.runtime.queues import StreamEnd
from engine.runtime.routing import RoutingMode
from engine.runtime.shared_engine import EngineStats

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
NODE_TIMEOUT = 5.0
REBALANCE_SECONDS = 2.0
#: Loading the model and measuring its costs on a node.
START_TIMEOUT = 180.0


@dataclass
class FleetFeed:
    """A camera as the consumer sees it (``failure`` is set when it cannot run anywhere)."""

    name: str
    failure: str | None = None


@dataclass
class _Node:
    view: NodeView
    actor: object
    info: NodeInfo
    cameras: tuple[str, ...] = ()
    pending: object | None = None
    sent: float = 0.0
    alive: bool = True
    report: NodeReport | None = None
    mode: RoutingMode | None = None

    @property
    def label(self) -> str:
        return f"{self.view.address}/{self.view.node_id[:8]}"

    def capacity(self) -> NodeCapacity:
        return NodeCapacity(self.view.node_id, self.info.exit1_ms, self.info.exit2_ms, self.view.resources,
                            self.view.labels, self.view.head)


@dataclass
class _Totals:
    """A camera's counts from the engines it ran on before the current one."""

    frames_read: int = 0
    frames_dropped: int = 0
    frames_recorded: int = 0
    reconnects: int = 0


@dataclass
class _Camera:
    settings: CameraSettings
    node: str | None = None
    last_node: str | None = None
    segment: int = -1
    moves: int = 0
    moved_at: float | None = None
    recovered_in: float | None = None
    ended: bool = False
    stats: CameraStats | None = None
    before: _Totals = field(default_factory=_Totals)


class FleetMonitor:
    """A multi-camera monitor over the nodes of a Ray cluster (joined before this is built).

    Args:
        config: the cameras, model and budget (``cameras.yaml``).
        weights: the model file, at the same path on every node.
        model_config: its architecture YAML, if needed.

    Raises:
        UserError: no node can run an engine, a camera pinned where no node is, an unknown class.
    """

    def __init__(self, config: MonitorConfig, weights: Path, model_config: Path | None) -> None:
        import ray

        self._ray = ray
        self.config = config
        self.feeds = [FleetFeed(c.name) for c in config.cameras]
        self._cameras = {c.name: _Camera(portable(c)) for c in config.cameras}
        self.results: queue.Queue = queue.Queue(maxsize=1024)
        self.nodes: dict[str, _Node] = {}
        self.nodes_lost = 0
        self._node_args = (config.model, str(weights), str(model_config) if model_config else None,
                           config.budget.allocation, config.budget.batch)
        self._actor_class = ray.remote(NodeEngine)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_rebalance = 0.0
        self.metrics: FleetMetrics | None = None
        views = alive_nodes()
        if not views:
            raise UserError("the Ray cluster has no live node with a free CPU")
        check_pins(self._demands(), [NodeCapacity(v.node_id, 1, 1, v.resources, v.labels, v.head) for v in views])
        self._start_engines(self._engine_nodes(views))
        self._check_classes()

    @property
    def camera_names(self) -> list[str]:
        return list(self._cameras)

    # ---------------------------------------------------------------- start and stop

    def _engine_nodes(self, views: Sequence[NodeView]) -> list[NodeView]:
        """Worker nodes (the head too when there is no other, or when a pin needs it)."""
        workers = [v for v in views if not v.head]
        heads = [v for v in views if v.head]
        demands = self._demands()
        pinned_to_head = any(
            c.pins and not any(NodeCapacity(w.node_id, 1, 1, w.resources, w.labels).satisfies(c.pins) for w in workers)
            for c in demands)
        return workers + heads if not workers or pinned_to_head else workers

    def _start_engines(self, views: Sequence[NodeView]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actors = [self._actor_class.options(
            num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(v.node_id, soft=False),
        ).remote(*self._node_args) for v in views]
        try:
            infos = self._ray.get([a.describe.remote() for a in actors], timeout=START_TIMEOUT)
        except Exception as exc:
            for actor in actors:
                self._ray.kill(actor)
            raise UserError(f"a node engine did not start: {_one_line(exc)}") from None
        for view, actor, info in zip(views, actors, infos):
            self.nodes[view.node_id] = _Node(view, actor, info)
            logger.info("node %s: exit 1 %.1f ms, exit 2 %.1f ms", view.address, info.exit1_ms, info.exit2_ms)

    def _check_classes(self) -> None:
        names = next(iter(self.nodes.values())).info.class_names
        for camera in self.config.cameras:
            unknown = [c for c in camera.classes if c not in names]
            if unknown:
                self._kill_all()
                raise UserError(f"camera {camera.name}: unknown class {unknown[0]!r} "
                                f"(the model knows: {', '.join(names)})")
            for zone in camera.zones:
                try:
                    zone.check_classes(names)
                except UserError as exc:
                    self._kill_all()
                    raise UserError(f"camera {camera.name}: {exc}") from None

    def attach_metrics(self, registry) -> None:
        """Serve the per-node figures beside the per-camera ones (on the driver's metrics port)."""
        self.metrics = FleetMetrics(registry, self.camera_names)

    def start(self) -> None:
        """Place every camera and start the supervision."""
        placement = place(self._demands(), [n.capacity() for n in self._alive()], self._expected_share())
        self._apply(placement.assignment, moved=None)
        self._thread = threading.Thread(target=self._supervise, name="fleet-driver", daemon=True)
        self._thread.start()

    def set_mode(self, mode: RoutingMode) -> None:
        with self._lock:
            self.config = replace(self.config, budget=replace(self.config.budget, **_budget_fields(mode)))
        self._last_rebalance = 0.0

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop the supervision, every node's cameras (recordings close), then the actors."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + NODE_TIMEOUT)
        ok = True
        refs = [n.actor.stop.remote() for n in self._alive()]
        try:
            ok = all(self._ray.get(refs, timeout=timeout + 5))
        except Exception as exc:
            logger.warning("a node did not stop cleanly: %s", _one_line(exc))
            ok = False
        self._kill_all()
        return ok

    def _kill_all(self) -> None:
        for node in self.nodes.values():
            try:
                self._ray.kill(node.actor)
            except Exception as exc:  # an actor that is already gone
                logger.debug("kill %s: %s", node.label, exc)

    # ---------------------------------------------------------------- what the consumer reads

    def stats(self, name: str) -> CameraStats:
        """The camera's figures over every node it ran on."""
        with self._lock:
            camera = self._cameras[name]
            current, before = camera.stats, camera.before
        failure = next(f.failure for f in self.feeds if f.name == name)
        if current is None:
            return CameraStats(name, CaptureStats(state="failed" if failure else "connecting"), EngineStats(), 0, 0,
                               failure)
        capture = replace(current.capture, frames_read=current.capture.frames_read + before.frames_read,
                          reconnects=current.capture.reconnects + before.reconnects)
        return replace(current, capture=capture, frames_dropped=current.frames_dropped + before.frames_dropped,
                       frames_recorded=current.frames_recorded + before.frames_recorded,
                       failure=failure or current.failure)

    def camera_summary(self, name: str) -> dict:
        """Where the camera ran last and how often it moved (and how fast it came back)."""
        camera = self._cameras[name]
        node = self.nodes.get(camera.last_node) if camera.last_node else None
        entry: dict = {"node": node.label if node else None, "moves": camera.moves}
        if camera.recovered_in is not None:
            entry["recovered_in_s"] = round(camera.recovered_in, 2)
        return entry

    # ---------------------------------------------------------------- supervision

    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
                if time.monotonic() - self._last_rebalance >= REBALANCE_SECONDS:
                    self._rebalance()
            except Exception:  # the supervision must outlive a bad report
                logger.exception("fleet supervision step failed")
                self._stop.wait(POLL_SECONDS)

    def _poll(self) -> None:
        now = time.monotonic()
        for node in self._alive():
            if node.pending is None:
                node.pending, node.sent = node.actor.drain.remote(), now
        pending = {node.pending: node for node in self._alive()}
        ready, _ = self._ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
        for ref in ready:
            node = pending[ref]
            node.pending = None
            try:
                report = self._ray.get(ref)
            except Exception as exc:  # RayActorError, node died, ...
                self._lose(node, _one_line(exc))
                continue
            self._take(node, report)
        now = time.monotonic()
        for node in self._alive():
            if node.pending is not None and now - node.sent > NODE_TIMEOUT:
                self._lose(node, f"no answer for {NODE_TIMEOUT:.0f} s")
        if len(ready) == len(pending):
            self._stop.wait(max(0.0, POLL_SECONDS - (time.monotonic() - now)))

    def _take(self, node: _Node, report: NodeReport) -> None:
        node.report = report
        with self._lock:
            for name, stats in report.stats.items():
                if self._cameras[name].node == node.view.node_id:
                    self._cameras[name].stats = stats
        for name, item in report.items:
            camera = self._cameras[name]
            if camera.node != node.view.node_id:
                continue  # a straggler from before the camera moved
            if isinstance(item, StreamEnd):
                camera.ended = True
                if item.failed:
                    self._fail(name, str(item.error) if item.error else "stream failed", put=False)
            elif camera.moved_at is not None and camera.recovered_in is None:
                camera.recovered_in = time.monotonic() - camera.moved_at
                logger.info("camera %s: first result on its new node %.1f s after the loss", name,
                            camera.recovered_in)
            self._put((name, item))
        if self.metrics is not None:
            self.metrics.update_node(node.label, len(node.cameras), node.mode, report.processing_fps,
                                     node.info.exit1_ms, node.info.exit2_ms)

    def _put(self, entry: tuple) -> None:
        while not self._stop.is_set():
            try:
                self.results.put(entry, timeout=0.1)
                return
            except queue.Full:
                continue

    def _lose(self, node: _Node, reason: str) -> None:
        """The node is gone: its cameras go to the surviving nodes."""
        node.alive = False
        node.pending = None
        self.nodes_lost += 1
        logger.warning("node %s lost (%s); moving its cameras", node.label, reason)
        try:
            self._ray.kill(node.actor)
        except Exception as exc:
            logger.debug("kill %s: %s", node.label, exc)
        if self.metrics is not None:
            self.metrics.node_lost(node.label, self.nodes_lost)
        orphans = [name for name, c in self._cameras.items() if c.node == node.view.node_id and not c.ended]
        now = time.monotonic()
        with self._lock:
            for name in orphans:
                camera = self._cameras[name]
                if camera.stats is not None:
                    camera.before = _add(camera.before, camera.stats)
                    camera.stats = None
                camera.node = None
                camera.moves += 1
                camera.moved_at, camera.recovered_in = now, None
                if self.metrics is not None:
                    self.metrics.moved(name, camera.moves)
        if not orphans:
            return
        self._adopt_new_nodes()
        survivors = self._alive()
        if not survivors:
            for name in orphans:
                self._fail(name, "no node of the cluster is left to run it")
            return
        capacities = [n.capacity() for n in survivors]
        for name in orphans:
            pins = self._cameras[name].settings.node
            if not any(c.satisfies(pins) for c in capacities):
                self._fail(name, f"its node left and no other has {', '.join(pins)}")
        current = {name: c.node for name, c in self._cameras.items() if c.node is not None}
        placement = place(self._demands(), capacities, self._expected_share(), current)
        self._apply(placement.assignment, moved=[n for n in orphans if not self._cameras[n].ended])

    def _adopt_new_nodes(self) -> None:
        """Nodes that joined since the start become candidates (an engine is started on each)."""
        known = set(self.nodes)
        fresh = [v for v in alive_nodes() if v.node_id not in known and not v.head]
        if fresh:
            try:
                self._start_engines(fresh)
            except UserError as exc:
                logger.warning("%s", exc)

    def _apply(self, assignment: dict[str, str], moved: Sequence[str] | None) -> None:
        """Run each node that takes ``moved`` cameras with its new set (every node when None: the start)."""
        if moved is None:
            changed = set(assignment.values())
        else:
            changed = {assignment[name] for name in moved if name in assignment}
        for name, node_id in assignment.items():
            self._cameras[name].node = node_id
            self._cameras[name].last_node = node_id
        modes = self._node_modes()
        refs = {}
        for node_id in changed:
            node = self.nodes[node_id]
            self._settle(node)
            names = [n for n, c in self._cameras.items() if c.node == node_id and not c.ended]
            node.cameras = tuple(names)
            settings = []
            for name in names:
                camera = self._cameras[name]
                if camera.stats is not None:  # restarted here: its counts so far are kept
                    camera.before = _add(camera.before, camera.stats)
                    camera.stats = None
                camera.segment += 1
                settings.append(segment_settings(camera.settings, camera.segment))
            node.mode = modes[node_id]
            refs[node_id] = node.actor.run.remote(settings, node.mode)
            logger.info("node %s runs %s", node.label, ", ".join(names) or "nothing")
        for node_id, ref in refs.items():
            try:
                failures = self._ray.get(ref, timeout=START_TIMEOUT)
            except Exception as exc:
                self._lose(self.nodes[node_id], _one_line(exc))
                continue
            for name, failure in failures.items():
                self._fail(name, failure)

    def _settle(self, node: _Node) -> None:
        """Take the node's drain in flight, so that no report from before a restart arrives after it."""
        if node.pending is None:
            return
        ref, node.pending = node.pending, None
        try:
            self._take(node, self._ray.get(ref, timeout=NODE_TIMEOUT))
        except Exception as exc:
            logger.warning("node %s: last report lost (%s)", node.label, _one_line(exc))

    def _fail(self, name: str, failure: str, put: bool = True) -> None:
        camera = self._cameras[name]
        camera.ended = True
        for feed in self.feeds:
            if feed.name == name and feed.failure is None:
                feed.failure = failure
        if put:
            self._put((name, StreamEnd("failed", UserError(failure))))

    # ---------------------------------------------------------------- budget

    def _rebalance(self) -> None:
        self._last_rebalance = time.monotonic()
        for node_id, mode in self._node_modes().items():
            node = self.nodes[node_id]
            if node.alive and node.cameras and mode != node.mode:
                node.mode = mode
                node.actor.set_mode.remote(mode)

    def _node_modes(self) -> dict[str, RoutingMode]:
        """Each running node's share of the budget."""
        budget = self.config.budget
        mode = budget.mode()
        busy = [n for n in self._alive() if any(c.node == n.view.node_id for c in self._cameras.values())]
        loads = [self._load(n) for n in busy]
        if mode.kind == "target_fps":
            split = split_target_fps(float(mode.value), loads)
            return {node_id: RoutingMode("target_fps", max(rate, 0.1)) for node_id, rate in split.items()}
        if mode.kind == "second_fraction" and budget.allocation == "global":
            shares = split_second_fraction(float(mode.value), loads)
            return {node_id: RoutingMode("second_fraction", share) for node_id, share in shares.items()}
        return {n.view.node_id: mode for n in busy}

    def _load(self, node: _Node) -> NodeLoad:
        cameras = [c for c in self._cameras.values() if c.node == node.view.node_id and not c.ended]
        rates = [c.settings.fps for c in cameras]
        supply = sum(rates) if rates and all(r is not None for r in rates) else None
        scores = node.report.scores if node.report is not None else ()
        return NodeLoad(node.view.node_id, node.info.exit1_ms, node.info.exit2_ms, scores, supply)

    def _expected_share(self) -> float:
        mode = self.config.budget.mode()
        if mode.kind == "second_fraction":
            return float(mode.value)
        return {"first": 0.0, "second": 1.0}.get(mode.kind, 0.5)

    def _demands(self) -> list[CameraDemand]:
        return [CameraDemand(name, c.settings.fps or DEFAULT_FPS, c.settings.node)
                for name, c in self._cameras.items() if not c.ended]

    def _alive(self) -> list[_Node]:
        return [n for n in self.nodes.values() if n.alive]


def portable(camera: CameraSettings) -> CameraSettings:
    """The camera with its node-side paths absolute (the same path on every node)."""
    source = camera.source
    if Path(source).exists():
        source = str(Path(source).resolve())
    record = str(Path(camera.record).resolve()) if camera.record else None
    snapshots = str(Path(camera.snapshot_dir).resolve()) if camera.snapshot_dir else None
    return replace(camera, source=source, record=record, snapshot_dir=snapshots)


def segment_settings(camera: CameraSettings, segment: int) -> CameraSettings:
    """The camera as one node runs it: its ``segment``-th recording file (the first one keeps its name)."""
    if not camera.record or segment == 0:
        return camera
    path = Path(camera.record)
    return replace(camera, record=str(path.with_name(f"{path.stem}.{segment}{path.suffix}")))


def _add(totals: _Totals, stats: CameraStats) -> _Totals:
    return _Totals(totals.frames_read + stats.capture.frames_read, totals.frames_dropped + stats.frames_dropped,
                   totals.frames_recorded + stats.frames_recorded, totals.reconnects + stats.capture.reconnects)


def _budget_fields(mode: RoutingMode) -> dict:
    fields = dict.fromkeys(("target_fps", "route", "threshold", "second_fraction"))
    if mode.kind in ("first", "second"):
        fields["route"] = mode.kind
    else:
        fields[mode.kind] = mode.value
    return fields


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
