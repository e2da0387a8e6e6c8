"""`monitor`: many cameras on one engine with one compute budget; one JSON summary at the end."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.common import default_weights, finite_float, handle_stop_signals, load_model, resolve_config
from engine.errors import UserError
from engine.model.backend_names import check_backend_available
from engine.runtime.queues import StreamEnd, get_item

if TYPE_CHECKING:
    from engine.runtime.camera_metrics import CameraMetrics
    from engine.runtime.frames import Result
    from engine.runtime.monitor import CameraStats
    from engine.runtime.monitor_config import CameraSettings
    from engine.runtime.sinks import ResultSink

logger = logging.getLogger("dynastream.monitor")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("monitor", help="watch many cameras with one engine and one budget")
    parser.add_argument("--config", required=True, help="cameras.yaml: model, budget and cameras")
    parser.add_argument("--duration", type=finite_float, help="stop after this many seconds")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    parser.add_argument("--no-progress", action="store_true", help="no progress line")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the cameras on a Ray cluster: HOST:PORT of its head, 'auto' (this machine "
                             "joined it with ray start) or 'local' (a private one on 127.0.0.1); docs/fleet.md")
    parser.set_defaults(func=monitor)


def monitor(args: argparse.Namespace) -> int:
    with handle_stop_signals() as stop:
        return _monitor(args, stop)


def _monitor(args: argparse.Namespace, stop: threading.Event) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UserError(f"--duration must be positive, got {args.duration}")
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise UserError(f"--metrics-port must be a TCP port (1-65535), got {args.metrics_port}")
    # Kept out of every other command's start-up (and --help): the config brings yaml.
    from engine.runtime.monitor_config import load_monitor_config

    config = load_monitor_config(args.config)
    check_backend_available(config.model.backend)
    if args.ray:
        return _monitor_fleet(args, config, stop)
    loaded = load_model(config.model, engine=True)
    for camera in config.cameras:
        unknown = [c for c in camera.classes if c not in loaded.class_names]
        if unknown:
            raise UserError(f"camera {camera.name}: unknown class {unknown[0]!r} "
                            f"(the model knows: {', '.join(loaded.class_names)})")
        for zone in camera.zones:
            try:
                zone.check_classes(loaded.class_names)
            except UserError as exc:
                raise UserError(f"camera {camera.name}: {exc}") from None
    from engine.runtime.monitor import Monitor  # brings the capture's decoders

    runner = Monitor(config.cameras, loaded.predictor, config.budget.mode(), config.budget.allocation,
                     loaded.calibration, max_batch=config.budget.batch)
    try:  # nothing runs yet: the sinks' failures leave no thread behind
        sinks = CameraSinks.open(config.cameras, args.metrics_port, runner.stats)
    except BaseException:
        runner.shutdown()
        raise
    return MonitorRun(runner, sinks, config, args, stop).execute()


def _monitor_fleet(args: argparse.Namespace, config, stop: threading.Event) -> int:
    """The same run over a Ray cluster: one engine per node, events and metrics back here."""
    from engine.fleet.cluster import connect, disconnect
    from engine.fleet.driver import FleetMonitor  # brings ray

    weights = Path(config.model.weights or default_weights()).resolve()
    model_config = resolve_config(config.model.config)
    connect(args.ray)
    try:
        runner = FleetMonitor(config, weights, model_config.resolve() if model_config else None)
        try:  # snapshots are taken on the nodes, where the pictures are
            sinks = CameraSinks.open([replace(c, snapshot_dir=None) for c in config.cameras], args.metrics_port,
                                     runner.stats)
        except BaseException:
            runner.shutdown()
            raise
        if sinks.metrics is not None:
            runner.attach_metrics(sinks.metrics.registry)
        return FleetRun(runner, sinks, config, args, stop).execute()
    finally:
        disconnect()


class CameraSinks:
    """Each camera's list of result sinks (the same outputs, opened and fed the same way, as
    ``run``'s one list) and the metrics server the cameras share.

    Args:
        by_camera: each camera's sinks, in the order they are fed.
        metrics: the shared server, when metrics are served (its cameras' sinks are in ``by_camera``).
    """

    def __init__(self, by_camera: dict[str, list[ResultSink]], metrics: CameraMetrics | None = None) -> None:
        self.by_camera = by_camera
        self.metrics = metrics

    @classmethod
    def open(cls, cameras: Sequence[CameraSettings], metrics_port: int | None = None,
             stats: Callable[[str], CameraStats] | None = None) -> CameraSinks:
        """Open every camera's outputs; on a failure the ones already open are closed.

        Args:
            cameras: the cameras' settings (their events, object events and snapshot folders).
            metrics_port: serve Prometheus metrics on 127.0.0.1:PORT when given.
            stats: a camera's current stats by name; needed with ``metrics_port``.
        """
        from engine.runtime.camera_metrics import CameraMetrics  # brings prometheus_client
        from engine.runtime.sinks import open_stream_sinks  # brings cv2 (snapshots)

        if metrics_port and stats is None:
            raise ValueError("serving metrics needs the cameras' stats")
        sinks = cls({})
        try:
            for camera in cameras:
                sinks.by_camera[camera.name] = open_stream_sinks(
                    camera.name, events=camera.events, object_events=camera.object_events,
                    snapshot_dir=camera.snapshot_dir, classes=camera.classes)
            if metrics_port:
                sinks.metrics = CameraMetrics(metrics_port, [c.name for c in cameras])
                for camera in cameras:
                    sinks.by_camera[camera.name].append(sinks.metrics.sink(camera.name, partial(stats, camera.name)))
        except BaseException:
            sinks.close()
            raise
        return sinks

    def offer(self, camera: str, result: Result) -> None:
        for sink in self.by_camera.get(camera, ()):
            sink.offer(result)

    def close(self) -> list[str]:
        """Close every sink whatever the others do (each failure is logged); returns the problems, one line each."""
        from engine.runtime.sinks import close_all

        problems = [f"camera {name}: {problem}" for name, sinks in self.by_camera.items()
                    for problem in close_all(sinks)]
        if self.metrics is not None:
            problems += close_all([self.metrics])
        return problems


class MonitorRun:
    """The CLI's consumer loop over every camera's results, until all end or a limit or signal."""

    def __init__(self, runner, sinks: CameraSinks, config, args: argparse.Namespace,
                 stop_signal: threading.Event) -> None:
        self.runner = runner
        self.sinks = sinks
        self.config = config
        self.args = args
        self.stop_signal = stop_signal
        names = runner.camera_names
        self.processed = dict.fromkeys(names, 0)
        self.second = dict.fromkeys(names, 0)
        self.ended: dict[str, str] = {f.name: "error" for f in runner.feeds if f.failure is not None}

    def execute(self) -> int:
        bar = None if self.args.no_progress else _progress_bar()
        start = time.perf_counter()
        reason = "eof"
        try:
            self.runner.start()
            reason = self._consume(bar, start)
        finally:
            ok = self.runner.shutdown(timeout=10.0)
            if bar is not None:
                bar.close()
            self.sinks.close()  # a sink that cannot close says so in a warning line
        elapsed = time.perf_counter() - start
        summary = self._summary(reason, elapsed)
        print(json.dumps(summary), flush=True)
        if not ok:
            print("warning: a worker did not stop in time; a recording may be incomplete", file=sys.stderr)
        failed = {name: cam["error"] for name, cam in summary["cameras"].items() if cam.get("error")}
        for name, error in failed.items():
            print(f"error: camera {name}: {error}", file=sys.stderr)
        return 2 if failed else 0

    def _consume(self, bar, start: float) -> str:
        names = self.runner.camera_names
        while len(self.ended) < len(names):
            if self.stop_signal.is_set():
                return "signal"
            if self.args.duration and time.perf_counter() - start >= self.args.duration:
                return "duration"
            entry = get_item(self.runner.results, 0.1)
            if entry is None:
                continue
            camera, item = entry
            if isinstance(item, StreamEnd):
                self.ended[camera] = "error" if item.failed else "eof"
                if item.failed:
                    logger.warning("%s: %s", camera, self.runner.stats(camera).failure)
                continue
            self.processed[camera] += 1
            self.second[camera] += item.detections.exit == 2
            self.sinks.offer(camera, item)
            if bar is not None:
                self._update_bar(bar, start)
        return "eof"

    def _update_bar(self, bar, start: float) -> None:
        bar.update(1)
        if bar.n % 10:
            return
        total = sum(self.processed.values())
        elapsed = max(time.perf_counter() - start, 1e-6)
        live = sum(self.runner.stats(n).state == "live" for n in self.runner.camera_names)
        bar.set_postfix({"fps": f"{total / elapsed:.1f}", "exit2": f"{sum(self.second.values()) / total:.0%}",
                         "live": f"{live}/{len(self.processed)}"}, refresh=False)

    def _summary(self, reason: str, elapsed: float) -> dict:
        cameras = {}
        for name in self.runner.camera_names:
            stats = self.runner.stats(name)
            processed = self.processed[name]
            entry = {
                "frames_read": stats.capture.frames_read,
                "frames_processed": processed,
                "processing_fps": round(processed / elapsed, 2) if elapsed > 0 else 0.0,
                "second_exit_fraction": round(self.second[name] / processed, 4) if processed else 0.0,
                "frames_dropped": stats.frames_dropped,
                "frames_recorded": stats.frames_recorded,
                "reconnects": stats.capture.reconnects,
                "mean_latency_ms": round(stats.lane.mean_latency_ms, 2),
                "p95_latency_ms": round(stats.lane.p95_latency_ms, 2),
                "exit_reason": self.ended.get(name, reason),
            }
            if stats.failure:
                entry["error"] = stats.failure
            cameras[name] = entry
        total = sum(self.processed.values())
        budget = self.config.budget
        return {
            "cameras": cameras,
            "processing_fps": round(total / elapsed, 2) if elapsed > 0 else 0.0,
            "second_exit_fraction": round(sum(self.second.values()) / total, 4) if total else 0.0,
            "target_fps": budget.target_fps,
            "allocation": budget.allocation,
            "mode": budget.mode().describe(),
            "exit_reason": reason,
        }


class FleetRun(MonitorRun):
    """The consumer loop over a fleet: the same summary, plus where each camera ran and nodes lost."""

    def _summary(self, reason: str, elapsed: float) -> dict:
        summary = super()._summary(reason, elapsed)
        for name, entry in summary["cameras"].items():
            entry.update(self.runner.camera_summary(name))
        summary["nodes_lost"] = self.runner.nodes_lost
        return summary


def _progress_bar():
    from tqdm import tqdm

    return tqdm(unit="frame", desc="monitor", file=sys.stderr, dynamic_ncols=True, disable=None)
