"""`run`: the headless streaming pipeline — detect, record, log events, serve metrics; one JSON summary."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from app.commands.common import add_model_arguments, finite_float, handle_stop_signals


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the detector on a video file, camera or stream")
    parser.add_argument("--source", help="file, image folder, camera index, rtsp:// or http(s):// URL "
                                          "(default: the bundled demo video)")
    add_model_arguments(parser)
    routing = parser.add_mutually_exclusive_group()
    routing.add_argument("--target-fps", type=finite_float, help="hold this processing rate (the controller)")
    routing.add_argument("--threshold", type=finite_float, help="fixed router threshold: score >= T leaves at exit 1")
    routing.add_argument("--second-fraction", type=finite_float,
                         help="send this share of the stream's frames to exit 2 (the default, at 0.5)")
    routing.add_argument("--route", choices=["first", "second"], help="force one exit")
    parser.add_argument("--record", help="write the annotated video here (.mp4 or .mkv; crash-safe)")
    parser.add_argument("--events", help="write one JSON line per processed frame here")
    parser.add_argument("--realtime", action="store_true", help="play files at their native rate (live mode)")
    parser.add_argument("--loop", action="store_true", help="start files over at their end, on one timeline "
                                                       "(stop with --duration, --max-frames or Ctrl-C)")
    parser.add_argument("--duration", type=finite_float, help="stop after this many seconds")
    parser.add_argument("--max-frames", type=int, help="stop after processing this many frames")
    parser.add_argument("--max-reconnects", type=int, help="give up after this many failed reconnects in a row "
                                                           "(default: unlimited for live sources)")
    parser.add_argument("--stall-timeout", type=finite_float, default=5.0, help="seconds without a frame before "
                                                                         "reconnecting (live sources)")
    parser.add_argument("--classes", help="comma-separated class names to keep, e.g. circle,star")
    parser.add_argument("--snapshot-dir", help="save an annotated JPEG when a watched class appears")
    parser.add_argument("--snapshot-cooldown", type=finite_float, default=10.0, help="seconds between snapshots")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    tracking = parser.add_argument_group("tracking")
    tracking.add_argument("--track", action=argparse.BooleanOptionalAction, default=True,
                          help="attach track ids to the detections (default: on; --no-track for raw detections)")
    tracking.add_argument("--object-events", metavar="FILE.jsonl",
                          help="one JSON line when a tracked object starts and one when it ends, plus zone events "
                               "(with --snapshot-dir: each object's best annotated frame)")
    tracking.add_argument("--zone", action="append", default=[], metavar="NAME:x1,y1,x2,y2,x3,y3,...[:CLASSES]",
                          help="a polygon zone in image pixels (enter/leave events, a live count per class); "
                               "repeatable")
    tracking.add_argument("--line", action="append", default=[], metavar="NAME:x1,y1,x2,y2[:CLASSES]",
                          help="a counting line (in/out counts); repeatable")
    tracking.add_argument("--track-routing", action="store_true",
                          help="experiment: send a frame right after tracks were born or lost to exit 2, "
                               "within the routing budget")
    parser.set_defaults(func=run)


def routing_mode(args: argparse.Namespace):
    from engine.runtime.routing import RoutingMode

    if args.target_fps is not None:
        return RoutingMode("target_fps", args.target_fps)
    if args.threshold is not None:
        return RoutingMode("threshold", args.threshold)
    if args.second_fraction is not None:
        return RoutingMode("second_fraction", args.second_fraction)
    if args.route:
        return RoutingMode(args.route)
    # Default: the hardest half of this stream's recent frames go to exit 2. A share of the
    # stream's own scores carries over to any footage, where a threshold calibrated elsewhere
    # (or the reference 0.5) can send every frame one way.
    return RoutingMode("second_fraction", 0.5)


def check_arguments(args: argparse.Namespace) -> None:
    from engine.errors import UserError

    for name in ("duration", "stall_timeout", "snapshot_cooldown", "max_frames"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.max_reconnects is not None and args.max_reconnects < 0:
        raise UserError(f"--max-reconnects must be >= 0, got {args.max_reconnects}")
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise UserError(f"--metrics-port must be a TCP port (1-65535), got {args.metrics_port}")
    if not args.track:
        needs = [o for o, v in (("--object-events", args.object_events), ("--zone", args.zone),
                                ("--line", args.line), ("--track-routing", args.track_routing)) if v]
        if needs:
            raise UserError(f"{needs[0]} needs tracking; drop --no-track")


def parse_zones(args: argparse.Namespace) -> tuple:
    """``--zone`` and ``--line`` as zone settings (their classes are checked once the model is known)."""
    from engine.errors import UserError
    from engine.tracking.zones import parse_zone_argument

    zones = tuple([parse_zone_argument(z, "polygon") for z in args.zone] + [parse_zone_argument(z, "line")
                                                                            for z in args.line])
    names = [zone.name for zone in zones]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise UserError(f"two zones are named {repeated!r}")
    return zones


def run(args: argparse.Namespace) -> int:
    # Signals are caught from the start: loading the model takes seconds, and a Ctrl-C during
    # that time must still end with a summary and exit 0, not a traceback.
    with handle_stop_signals() as stop:
        return _run(args, stop)


def _run(args: argparse.Namespace, stop: threading.Event) -> int:
    from app.commands.common import DEFAULT_VIDEO, load_model, model_options
    from engine.runtime.pipeline import Pipeline, PipelineConfig
    from engine.runtime.sources import parse_source

    check_arguments(args)
    zones = parse_zones(args)
    source = args.source if args.source is not None else str(DEFAULT_VIDEO)
    spec = parse_source(source)  # fails fast, with one line, on sources that cannot exist
    info = None if spec.is_live else _probe(source)
    if info is not None:  # live sources are checked on their first frame, by the engine
        for zone in zones:
            zone.check_frame(info.width, info.height)
    loaded = load_model(model_options(args))
    predictor, names, calibration = loaded.predictor, loaded.class_names, loaded.calibration
    classes = tuple(c.strip() for c in (args.classes or "").split(",") if c.strip())
    _check_classes(classes, names)
    for zone in zones:
        zone.check_classes(names)
    mode = routing_mode(args)
    config = PipelineConfig(source=source, mode=mode, realtime=args.realtime, record=args.record, classes=classes,
                            stall_timeout=args.stall_timeout, max_reconnects=args.max_reconnects, loop=args.loop,
                            track=args.track, zones=zones, track_routing=args.track_routing,
                            max_frames=args.max_frames)
    sinks = _open_sinks(args, classes)
    pipeline = Pipeline(config, predictor, calibration)
    return StreamingRun(pipeline, sinks, args, info, spec.display, stop).execute()


def _probe(source: str):
    from engine.runtime.capture import probe_source

    return probe_source(source)


def _check_classes(classes: tuple[str, ...], names) -> None:
    from engine.errors import UserError

    unknown = [c for c in classes if c not in names]
    if unknown:
        raise UserError(f"--classes: unknown class {unknown[0]!r} (the model knows: {', '.join(names)})")


def _open_sinks(args: argparse.Namespace, classes: tuple[str, ...]) -> dict:
    from engine.runtime.sinks import EventLog, Metrics, SnapshotSaver, close_all
    from engine.tracking.object_events import ObjectEventLog

    sinks = {}
    try:
        if args.events:
            sinks["events"] = EventLog(args.events, classes)
        if args.object_events:
            # With object events the snapshot folder gets each object's best frame instead of
            # a frame whenever a watched class appears.
            sinks["object_events"] = ObjectEventLog(args.object_events, "stream", args.snapshot_dir, classes)
        elif args.snapshot_dir:
            sinks["snapshots"] = SnapshotSaver(args.snapshot_dir, classes, args.snapshot_cooldown)
        if args.metrics_port:
            sinks["metrics"] = Metrics(args.metrics_port)
    except BaseException:
        close_all(sinks.values())
        raise
    return sinks


# What the summary's latencies measure. Every frame of a file (no --realtime) is read ahead and waits
# its turn, so its latency grows with the queue; a live source, or a file played in real time, hands
# the engine its newest frame, so latency is what a camera's viewer sees.
LIVE_LATENCY = "capture to result (live: the newest frame is processed, older ones dropped)"
QUEUED_LATENCY = ("read to result, with the time each frame waited behind earlier ones (every frame of a file; "
                  "--realtime for a camera's latency)")


class StreamingRun:
    """The CLI's consumer loop: reads results until the stream ends or a limit or signal stops it."""

    def __init__(self, pipeline, sinks: dict, args: argparse.Namespace, info, display: str,
                 stop_signal: threading.Event) -> None:
        self.pipeline = pipeline
        self.sinks = sinks
        self.args = args
        self.info = info
        self.display = display
        self.stop_signal = stop_signal
        self.processed = 0  # results this consumer handled (the engine may have run a few more)
        self.second_exits = 0

    def execute(self) -> int:
        from engine.errors import UserError
        from engine.runtime.sinks import close_all

        bar = self._progress_bar()
        reason, error = "eof", None
        start = time.perf_counter()
        try:
            self.pipeline.start()
            reason, error = self._consume(bar, start)
        finally:
            ok = self.pipeline.shutdown(timeout=10.0)
            if bar is not None:
                bar.close()
            close_all(self.sinks.values())
        elapsed = time.perf_counter() - start
        print(json.dumps(self._summary(reason, elapsed)), flush=True)
        if not ok:
            print("warning: a worker did not stop in time; the recording may be incomplete", file=sys.stderr)
        if error:
            raise UserError(error)
        return 0

    def _consume(self, bar, start: float) -> tuple[str, str | None]:
        from engine.runtime.queues import StreamEnd, get_item

        while True:
            if self.stop_signal.is_set():
                return "signal", None
            if self.args.duration and time.perf_counter() - start >= self.args.duration:
                return "duration", None
            item = get_item(self.pipeline.results, 0.1)
            if item is None:
                continue
            if isinstance(item, StreamEnd):
                if item.reason == "failed":
                    error = str(item.error) if item.error else "stream failed"
                    # Source errors already name the source; say it once.
                    return "error", error if self.display in error else f"{self.display}: {error}"
                return ("max_frames" if item.reason == "limit" else "eof"), None
            self.processed += 1
            self.second_exits += item.detections.exit == 2
            self._handle(item, bar)
            if self.args.max_frames and self.processed >= self.args.max_frames:
                return "max_frames", None

    def _handle(self, result, bar) -> None:
        if "events" in self.sinks:
            self.sinks["events"].write(result)
        if "object_events" in self.sinks:
            self.sinks["object_events"].write(result)
        if "snapshots" in self.sinks:
            self.sinks["snapshots"].offer(result)
        stats = None
        if "metrics" in self.sinks or bar is not None:
            stats = self.pipeline.stats
        if "metrics" in self.sinks:
            self.sinks["metrics"].update(result, stats)
        if bar is not None:
            bar.update(1)
            engine = stats.engine
            bar.set_postfix({"fps": f"{engine.processing_fps:.1f}", "exit2": f"{engine.second_exit_fraction:.0%}",
                             "dropped": stats.frames_dropped}, refresh=False)

    def _progress_bar(self):
        if self.args.no_progress:
            return None
        from tqdm import tqdm

        total = self.info.frame_count if self.info is not None and not (self.args.realtime or self.args.loop) \
            else None
        return tqdm(total=total, unit="frame", desc=self.display[-40:], file=sys.stderr, dynamic_ncols=True,
                    disable=None)

    def _summary(self, reason: str, elapsed: float) -> dict:
        from engine.runtime.sinks import sink_errors

        stats = self.pipeline.stats
        engine = stats.engine
        controller = engine.controller
        return {
            "source": self.display,
            "frames_read": stats.capture.frames_read,
            "frames_processed": self.processed,
            "frames_dropped": stats.frames_dropped,
            "frames_recorded": stats.frames_recorded,
            "processing_fps": round(self.processed / elapsed, 2) if elapsed > 0 else 0.0,
            "second_exit_fraction": round(self.second_exits / self.processed, 4) if self.processed else 0.0,
            "target_fps": self.args.target_fps,
            "mean_latency_ms": round(engine.mean_latency_ms, 2),
            "p95_latency_ms": round(engine.p95_latency_ms, 2),
            "latency": LIVE_LATENCY if self.pipeline.live else QUEUED_LATENCY,
            "reconnects": stats.capture.reconnects,
            "exit_reason": reason,
            "target_reachable": None if controller is None else controller.reachable,
            "recording_error": stats.writer.last_error if stats.writer is not None else None,
            **sink_errors(self.sinks),
        }
