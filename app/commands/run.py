"""`run`: the headless streaming pipeline — detect, record, log events, serve metrics; one JSON summary."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import TYPE_CHECKING

from app.commands.common import add_model_arguments, finite_float, handle_stop_signals, load_model
from app.commands.run_options import RunOptions
from engine.errors import UserError
from engine.runtime.queues import StreamEnd, get_item

if TYPE_CHECKING:
    from engine.model.loading import LoadedPredictor
    from engine.runtime.pipeline import Pipeline
    from engine.runtime.sinks import ResultSink
    from engine.runtime.sources import SourceInfo


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


def run(args: argparse.Namespace) -> int:
    options = RunOptions.from_args(args)  # every option checked before anything loads or opens
    # Signals are caught from here on: loading the model takes seconds, and a Ctrl-C during
    # that time must still end with a summary and exit 0, not a traceback.
    with handle_stop_signals() as stop:
        return _run(options, stop)


def _run(options: RunOptions, stop: threading.Event) -> int:
    spec = options.spec
    info = None if spec.is_live else _probe(options.source)
    if info is not None:  # live sources are checked on their first frame, by the engine
        for zone in options.zones:
            zone.check_frame(info.width, info.height)
    loaded = load_model(options.model, engine=True)
    _check_names(options, loaded.class_names)
    pipeline = _pipeline(options, loaded)
    sinks = _open_sinks(options, pipeline)
    return StreamingRun(pipeline, sinks, options, info, spec.display, stop).execute()


def _probe(source: str) -> SourceInfo:
    from engine.runtime.capture import probe_source  # brings the decoders (cv2, PyAV)

    return probe_source(source)


def _check_names(options: RunOptions, names: tuple[str, ...]) -> None:
    """``--classes`` and the zones' classes are classes of the model."""
    unknown = [c for c in options.classes if c not in names]
    if unknown:
        raise UserError(f"--classes: unknown class {unknown[0]!r} (the model knows: {', '.join(names)})")
    for zone in options.zones:
        zone.check_classes(names)


def _pipeline(options: RunOptions, loaded: LoadedPredictor) -> Pipeline:
    from engine.runtime.pipeline import Pipeline, PipelineConfig  # brings the decoders (cv2, PyAV)

    config = PipelineConfig(source=options.source, mode=options.mode, realtime=options.realtime, record=options.record,
                            classes=options.classes, stall_timeout=options.stall_timeout,
                            max_reconnects=options.max_reconnects, loop=options.loop, track=options.track,
                            zones=options.zones, track_routing=options.track_routing, max_frames=options.max_frames)
    return Pipeline(config, loaded.predictor, loaded.calibration)


def _open_sinks(options: RunOptions, pipeline: Pipeline) -> list[ResultSink]:
    """What the run writes besides the recording, in the order each result is offered to them."""
    from engine.runtime.sinks import Metrics, close_all, open_stream_sinks  # brings cv2 (snapshots)

    sinks = open_stream_sinks("stream", events=options.events, object_events=options.object_events,
                              snapshot_dir=options.snapshot_dir, classes=options.classes,
                              snapshot_cooldown=options.snapshot_cooldown)
    if options.metrics_port:
        try:
            sinks.append(Metrics(options.metrics_port, lambda: pipeline.stats))
        except BaseException:
            close_all(sinks)
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

    def __init__(self, pipeline: Pipeline, sinks: list[ResultSink], options: RunOptions, info: SourceInfo | None,
                 display: str, stop_signal: threading.Event) -> None:
        self.pipeline = pipeline
        self.sinks = sinks
        self.options = options
        self.info = info
        self.display = display
        self.stop_signal = stop_signal
        self.processed = 0  # results this consumer handled (the engine may have run a few more)
        self.second_exits = 0

    def execute(self) -> int:
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
            close_all(self.sinks)
        elapsed = time.perf_counter() - start
        print(json.dumps(self._summary(reason, elapsed)), flush=True)
        if not ok:
            print("warning: a worker did not stop in time; the recording may be incomplete", file=sys.stderr)
        if error:
            raise UserError(error)
        return 0

    def _consume(self, bar, start: float) -> tuple[str, str | None]:
        duration, max_frames = self.options.duration, self.options.max_frames
        while True:
            if self.stop_signal.is_set():
                return "signal", None
            if duration and time.perf_counter() - start >= duration:
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
            for sink in self.sinks:
                sink.offer(item)
            if bar is not None:
                self._update_bar(bar)
            if max_frames and self.processed >= max_frames:
                return "max_frames", None

    def _update_bar(self, bar) -> None:
        stats = self.pipeline.stats
        engine = stats.engine
        bar.update(1)
        bar.set_postfix({"fps": f"{engine.processing_fps:.1f}", "exit2": f"{engine.second_exit_fraction:.0%}",
                         "dropped": stats.frames_dropped}, refresh=False)

    def _progress_bar(self):
        if not self.options.progress:
            return None
        from tqdm import tqdm

        files = self.info is not None and not (self.options.realtime or self.options.loop)
        return tqdm(total=self.info.frame_count if files else None, unit="frame", desc=self.display[-40:],
                    file=sys.stderr, dynamic_ncols=True, disable=None)

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
            "target_fps": self.options.target_fps,
            "mean_latency_ms": round(engine.mean_latency_ms, 2),
            "p95_latency_ms": round(engine.p95_latency_ms, 2),
            "latency": LIVE_LATENCY if self.pipeline.live else QUEUED_LATENCY,
            "reconnects": stats.capture.reconnects,
            "exit_reason": reason,
            "target_reachable": None if controller is None else controller.reachable,
            "recording_error": stats.writer.last_error if stats.writer is not None else None,
            **sink_errors(self.sinks),
        }
