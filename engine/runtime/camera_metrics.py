"""Prometheus metrics of a multi-camera monitor, every series labelled by camera."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from engine.errors import UserError
from engine.runtime.frames import Result
from engine.tracking.state import TrackingUpdate

if TYPE_CHECKING:  # the monitor's module brings the capture and its decoders
    from engine.runtime.monitor import CameraStats

#: Capture-to-result latency buckets (seconds).
LATENCY_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12)


class CameraMetrics:
    """Served by prometheus-client's own thread on 127.0.0.1:``port``.

    Gauges mirror each camera's counters (they are totals kept by the runtime, so a gauge set
    from them never double-counts); the latency histogram and the per-exit counter are fed
    one result at a time, through each camera's :meth:`sink`.
    """

    kind = "metrics"

    def __init__(self, port: int, cameras: Sequence[str]) -> None:
        self.error: str | None = None  # set by close_all when the server fails to stop
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        self.registry = CollectorRegistry()
        labels = ["camera"]

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(f"dynastream_{name}", text, labels, registry=self.registry)

        self.fps = gauge("camera_processing_fps", "frames processed per second")
        self.second_share = gauge("camera_second_exit_fraction", "share of processed frames sent to exit 2")
        self.skipped = gauge("camera_frames_skipped", "frames read but not processed (dropped or over the fps cap)")
        self.reconnects = gauge("camera_reconnects", "source reconnects")
        self.up = gauge("camera_up", "1 while the camera delivers frames")
        self.frames = Counter("dynastream_camera_frames_processed", "frames processed", ["camera", "exit"],
                              registry=self.registry)
        self.latency = Histogram("dynastream_camera_latency_seconds", "capture to result", labels,
                                 registry=self.registry, buckets=LATENCY_BUCKETS)
        self.zones = ZoneMetrics(self.registry)
        for name in cameras:  # every camera shows up at once, before its first frame
            self.up.labels(name).set(0)
        try:
            self.server, self.thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as exc:
            raise UserError(f"cannot serve metrics on port {port}: {exc.strerror}") from None

    def observe(self, camera: str, result: Result) -> None:
        self.frames.labels(camera, str(result.detections.exit)).inc()
        self.latency.labels(camera).observe(result.latency_ms / 1000)
        if result.tracking is not None:
            self.zones.observe(camera, result.tracking)

    def update(self, stats) -> None:
        """Refresh a camera's gauges from its :class:`~engine.runtime.monitor.CameraStats`."""
        name = stats.name
        self.fps.labels(name).set(stats.lane.processing_fps)
        self.second_share.labels(name).set(stats.lane.second_exit_fraction)
        self.skipped.labels(name).set(stats.frames_dropped)
        self.reconnects.labels(name).set(stats.capture.reconnects)
        self.up.labels(name).set(1 if stats.state == "live" else 0)

    def sink(self, camera: str, stats: Callable[[], CameraStats]) -> CameraMetricsSink:
        """The result sink of one camera: its results, and its gauges from ``stats`` at each one."""
        return CameraMetricsSink(self, camera, stats)

    def close(self) -> None:
        self.server.shutdown()


class CameraMetricsSink:
    """One camera's share of :class:`CameraMetrics`, as a result sink; closing it leaves the
    shared server to its owner."""

    kind = "metrics"

    def __init__(self, metrics: CameraMetrics, camera: str, stats: Callable[[], CameraStats]) -> None:
        self.metrics = metrics
        self.camera = camera
        self.stats = stats
        self.error: str | None = None

    def offer(self, result: Result) -> None:
        # Gauges first: by the time a camera's frames are counted, its gauges exist.
        self.metrics.update(self.stats())
        self.metrics.observe(self.camera, result)

    def close(self) -> None:
        """Nothing of its own to release."""


class ZoneMetrics:
    """Zone and line series, labelled by camera and zone, in a given registry.

    ``dynastream_zone_objects{camera,zone,class}``: tracked objects inside a polygon zone now;
    ``dynastream_zone_entries_total{camera,zone,class}``: objects that entered it;
    ``dynastream_line_crossings_total{camera,zone,direction}``: crossings of a counting line.
    """

    def __init__(self, registry) -> None:
        from prometheus_client import Counter, Gauge

        self.inside = Gauge("dynastream_zone_objects", "tracked objects inside the zone now",
                            ["camera", "zone", "class"], registry=registry)
        self.entries = Counter("dynastream_zone_entries", "tracked objects that entered the zone",
                               ["camera", "zone", "class"], registry=registry)
        self.crossings = Counter("dynastream_line_crossings", "tracked objects that crossed the line",
                                 ["camera", "zone", "direction"], registry=registry)
        self._classes: dict[tuple[str, str], set[str]] = {}
        self._crossed: dict[tuple[str, str, str], int] = {}

    def observe(self, camera: str, tracking: TrackingUpdate) -> None:
        for event in tracking.zone_events:
            if event.event == "enter":
                self.entries.labels(camera, event.zone, event.label).inc()
        for zone in tracking.zones:
            if zone.kind == "polygon":
                seen = self._classes.setdefault((camera, zone.name), set())
                seen.update(zone.inside)
                for label in seen:  # a class that left entirely must read 0, not its last count
                    self.inside.labels(camera, zone.name, label).set(zone.inside.get(label, 0))
                continue
            for direction, total in (("in", zone.crossed_in), ("out", zone.crossed_out)):
                key = (camera, zone.name, direction)
                if total > self._crossed.get(key, 0):
                    self.crossings.labels(*key).inc(total - self._crossed.get(key, 0))
                    self._crossed[key] = total
