"""Per-result outputs of a monitoring run: event log, snapshots of watched classes, Prometheus metrics.

Every output is a :class:`ResultSink`: ``run`` keeps a list of them for its one stream and
``monitor`` one list per camera, both fed and closed by the same loop (:func:`open_stream_sinks`
opens the file outputs of either, :func:`close_all` ends any list).

A sink that cannot write (a full disk, a removed folder) says so once, in one warning line,
and the run goes on without it, as it does without a failed recording: detection, the other
sinks and the summary matter more than one output. Its ``error`` ends up in the summary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

import cv2

from engine.errors import UserError
from engine.render import draw_detections
from engine.runtime.camera_metrics import ZoneMetrics
from engine.runtime.frames import Result

if TYPE_CHECKING:
    from engine.runtime.pipeline import PipelineStats

logger = logging.getLogger(__name__)


class ResultSink(Protocol):
    """One output of a stream's results.

    Attributes:
        kind: what it writes (``events``, ``snapshots``, ...); a run's summary reports its
            ``error`` as ``<kind>_error``.
        error: why it stopped writing, or None while it works.
    """

    kind: str
    error: str | None

    def offer(self, result: Result) -> None:
        """Take one processed frame; a failure to write sets :attr:`error` instead of raising."""

    def close(self) -> None:
        """Flush and release; nothing is offered after this."""


class JsonLines:
    """A JSON-lines file written line by line (line-buffered, so a killed process loses no
    finished line); after a failed write it is closed and later lines are ignored.

    Args:
        path: the file (its folder is created).
        what: how messages name it, e.g. "events file".
    """

    def __init__(self, path: str | Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO = self.path.open("w", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise UserError(f"cannot write {what} {self.path}: {exc.strerror}") from None
        self.error: str | None = None

    def write(self, record: dict) -> None:
        if self.error is not None:
            return
        try:
            self._file.write(json.dumps(record) + "\n")
        except OSError as exc:
            self.error = _give_up(self.what, self.path, exc)
            _close_quietly(self._file)

    def close(self) -> None:
        """Close the file; a failure to flush its last lines becomes :attr:`error`."""
        if self._file.closed:
            return
        try:
            self._file.close()
        except OSError as exc:
            self.error = self.error or _give_up(self.what, self.path, exc)


class EventLog:
    """One JSON object per processed frame, flushed as written (readable while the run goes on)."""

    kind = "events"

    def __init__(self, path: str | Path, classes: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.classes = tuple(classes)
        self._lines = JsonLines(self.path, "events file")

    @property
    def error(self) -> str | None:
        return self._lines.error

    @error.setter
    def error(self, message: str | None) -> None:
        self._lines.error = message

    def offer(self, result: Result) -> None:
        """Append one line; after a failed write the log is closed and later results are ignored."""
        det = result.detections.filter_classes(self.classes)
        self._lines.write({
            "frame": result.frame.index, "pts": round(result.frame.pts, 4),
            "wall_time": round(result.frame.wall_time, 4), "exit": det.exit, "score": round(det.shown_score, 5),
            "threshold": None if det.shown_threshold is None else round(det.shown_threshold, 5),
            "router_score": round(det.router_score, 6),
            "router_threshold": None if det.threshold is None else round(det.threshold, 6),
            "latency_ms": round(result.latency_ms, 2), "detections": det.to_records(),
        })

    def close(self) -> None:
        """Close the file; a failure to flush its last lines becomes :attr:`error`."""
        self._lines.close()


class SnapshotSaver:
    """Saves an annotated JPEG when a watched class appears, at most once per ``cooldown`` seconds."""

    kind = "snapshots"

    def __init__(self, directory: str | Path, classes: Sequence[str] = (), cooldown: float = 10.0) -> None:
        self.directory = Path(directory)
        self.classes = tuple(classes)
        self.cooldown = cooldown
        self._last = -float("inf")
        self.saved = 0
        self.error: str | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create snapshot folder {self.directory}: {exc.strerror}") from None

    def offer(self, result: Result) -> Path | None:
        det = result.detections.filter_classes(self.classes)
        now = time.monotonic()
        if not len(det) or now - self._last < self.cooldown:
            return None
        self._last = now
        labels = "-".join(sorted(set(det.labels)))[:60]
        path = self.directory / f"{time.strftime('%Y%m%d-%H%M%S')}-f{result.frame.index}-{labels}.jpg"
        image = draw_detections(result.frame.image, det, latency_ms=result.latency_ms)
        try:
            written = cv2.imwrite(str(path), image[:, :, ::-1])
        except cv2.error as exc:
            written, reason = False, str(exc).strip().splitlines()[-1]
        else:
            reason = "disk full or folder not writable"
        if written:
            self.saved += 1
            return path
        path.unlink(missing_ok=True)  # a partly written JPEG is worse than none
        if self.error is None:  # one warning, not one per watched frame; later ones may succeed
            self.error = f"cannot write snapshots to {self.directory} ({reason})"
            logger.warning("%s; the run goes on, trying again at each snapshot", self.error)
        return None

    def close(self) -> None:
        """Nothing to release."""


class Metrics:
    """Prometheus metrics of one stream, served over HTTP on ``port`` (prometheus-client's own thread).

    Args:
        port: the TCP port on 127.0.0.1.
        stats: the pipeline's current stats; read at each result for the gauges.
    """

    kind = "metrics"

    def __init__(self, port: int, stats: Callable[[], PipelineStats]) -> None:
        self.stats = stats
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        self.registry = CollectorRegistry()
        self.fps = Gauge("dynastream_processing_fps", "frames processed per second", registry=self.registry)
        self.second_share = Gauge("dynastream_second_exit_fraction", "share of frames sent to exit 2",
                                  registry=self.registry)
        self.dropped = Gauge("dynastream_frames_dropped", "frames dropped before processing", registry=self.registry)
        self.reconnects = Gauge("dynastream_reconnects", "source reconnects", registry=self.registry)
        self.up = Gauge("dynastream_source_up", "1 while the source delivers frames", registry=self.registry)
        self.frames = Counter("dynastream_frames_processed", "frames processed", ["exit"], registry=self.registry)
        self.latency = Histogram("dynastream_exit_latency_seconds", "engine time per frame", ["exit"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56))
        self.zones = ZoneMetrics(self.registry)
        try:
            self.server, self.thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as exc:
            raise UserError(f"cannot serve metrics on port {port}: {exc.strerror}") from None
        self.error: str | None = None  # serving never writes to disk; kept for a uniform summary

    def offer(self, result: Result) -> None:
        exit_label = str(result.detections.exit)
        self.frames.labels(exit_label).inc()
        self.latency.labels(exit_label).observe(result.extra.get("engine_ms", 0.0) / 1000)
        if result.tracking is not None:
            self.zones.observe("stream", result.tracking)
        stats = self.stats()
        self.fps.set(stats.engine.processing_fps)
        self.second_share.set(stats.engine.second_exit_fraction)
        self.dropped.set(stats.frames_dropped)
        self.reconnects.set(stats.capture.reconnects)
        self.up.set(1 if stats.capture.state == "live" else 0)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def open_stream_sinks(stream: str, *, events: str | Path | None = None, object_events: str | Path | None = None,
                      snapshot_dir: str | Path | None = None, classes: Sequence[str] = (),
                      snapshot_cooldown: float = 10.0) -> list[ResultSink]:
    """The file outputs of one stream (``run``'s, or one camera's in ``monitor``), in the order they are fed.

    Args:
        stream: the stream's name in object events (the camera's name).
        events: one JSON line per processed frame, if given.
        object_events: one JSON line per tracked object's start and end, if given; the snapshot
            folder then gets each object's best frame instead of a frame per appearance.
        snapshot_dir: annotated JPEGs of watched classes, if given.
        classes: the watched classes (all when empty).
        snapshot_cooldown: seconds between snapshots (without object events).

    Raises:
        UserError: an output cannot be created; the ones opened before it are closed.
    """
    # object_events builds on this module's JsonLines, so it is imported only once this one is.
    from engine.tracking.object_events import ObjectEventLog

    sinks: list[ResultSink] = []
    try:
        if events:
            sinks.append(EventLog(events, classes))
        if object_events:
            sinks.append(ObjectEventLog(object_events, stream, snapshot_dir, classes))
        elif snapshot_dir:
            sinks.append(SnapshotSaver(snapshot_dir, classes, snapshot_cooldown))
    except BaseException:
        close_all(sinks)
        raise
    return sinks


def close_all(sinks: Iterable[ResultSink]) -> list[str]:
    """Close every sink, whatever the others do: one that fails to close is reported and skipped.

    Returns:
        One line for each sink that failed to close.
    """
    problems = []
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:  # whatever went wrong, the next sink must be closed all the same
            logger.warning("could not close %s: %s", type(sink).__name__, exc)
            sink.error = getattr(sink, "error", None) or f"could not close ({exc})"
            problems.append(f"{sink.kind}: could not close ({exc})")
    return problems


def sink_errors(sinks: Iterable[ResultSink]) -> dict[str, str | None]:
    """``{"<kind>_error": message or None}`` for each sink, for the run's summary."""
    return {f"{sink.kind}_error": sink.error for sink in sinks}


def _give_up(what: str, path: Path, exc: OSError) -> str:
    """Warn once that a sink stopped writing; returns the message for the summary."""
    message = f"cannot write {what} {path} ({exc.strerror or exc}); it stops here, the run goes on"
    logger.warning("%s", message)
    return message


def _close_quietly(file: TextIO) -> None:
    # Buffered lines that cannot be flushed are lost with the write that failed; closing must
    # still release the descriptor.
    with contextlib.suppress(OSError):
        file.close()
