"""The session: owns the pipeline and the model, and is the one place that wires the widgets'
intent signals to them.

Everything the user asks for arrives here as a signal from a control; the session decides
what the pipeline does (change routing, pause, loop or recording in place; rebuild it only for
a new source or model) and reflects the outcome back through the widgets' setters.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, pyqtSignal

from app.gui.bridge import Bridge
from app.gui.main_window import MainWindow
from app.gui.model_loader import LoadedModel, ModelChoice, ModelLoader
from app.gui.telemetry import offline_state, source_kind
from app.gui.video_view import ViewState
from engine.errors import UserError
from engine.runtime.frames import Result
from engine.runtime.queues import StreamEnd
from engine.runtime.routing import RoutingMode, mode_from_controls
from engine.runtime.sources import parse_source

if TYPE_CHECKING:  # engine.runtime.pipeline imports the model code (and torch) at import time
    from engine.runtime.pipeline import Pipeline, PipelineStats

logger = logging.getLogger(__name__)

STALE_AFTER = 2.0  # seconds without a new frame before a live picture is marked as not live
STOP_TIMEOUT = 1.0  # per worker; the window must close within about 2 s
ENGINE_GRACE = 5.0  # extra wait for an engine still inside a model call before its model is reused


@dataclass(frozen=True)
class SessionOptions:
    """What to start with: the ``gui`` command's options."""

    source: str
    model: ModelChoice
    target_fps: float | None = None
    loop: bool = True


class Session(QObject):
    """Signals:
        framesProcessed(total): a result was shown; ``total`` counts processed frames over
            every pipeline this session ran.
        errorShown(message): a problem was reported to the user.
        streamFinished(reason): the pipeline ended by itself ("eof" or "failed") and was not
            restarted.
    """

    framesProcessed = pyqtSignal(int)
    errorShown = pyqtSignal(str)
    streamFinished = pyqtSignal(str)

    def __init__(self, window: MainWindow, options: SessionOptions) -> None:
        super().__init__(window)
        self.window = window
        self.options = options
        self.bridge = Bridge(self)
        self.loader = ModelLoader(self)
        self.pipeline: Pipeline | None = None
        self.model: LoadedModel | None = None
        self.source = options.source
        self.loop = options.loop
        self.kind, self.mode_value = "target_fps", math.nan
        self.target_fps = options.target_fps
        # A target the app picked (not the user) follows what the source can deliver.
        self._auto_target = options.target_fps is None
        self.paused = False
        self.record_path: str | None = None
        self.classes: tuple[str, ...] = ()
        self._processed_before = 0
        self._second_before = 0
        self._first_result_at: float | None = None
        self._closed = False
        self._wire()

    def _wire(self) -> None:
        controls = self.window.controls
        controls.routing.modeChanged.connect(self.set_mode)
        controls.routing.targetFpsChanged.connect(self.set_target_fps)
        controls.source.sourceRequested.connect(self.open_source)
        controls.source.loopToggled.connect(self.set_loop)
        controls.model.modelRequested.connect(self.load_model)
        controls.playback.playPauseToggled.connect(self.set_paused)
        controls.playback.runToggled.connect(self.set_running)
        controls.playback.recordToggled.connect(self.set_recording)
        controls.classes.classFilterChanged.connect(self.set_classes)
        self.window.closing.connect(self.shutdown)
        self.bridge.resultReady.connect(self._on_result)
        self.bridge.statsReady.connect(self._on_stats)
        self.bridge.streamEnded.connect(self._on_stream_end)
        self.loader.loaded.connect(self._on_model_loaded)
        self.loader.failed.connect(self._on_model_failed)

    # ----------------------------------------------------------------- user intents

    def start(self) -> None:
        """Load the initial model; the pipeline starts once it is ready."""
        self.window.controls.source.set_source(self._display(self.source))
        self.window.controls.source.set_loop(self.loop)
        self.window.controls.routing.set_mode("target_fps", self.target_fps)
        self.window.controls.playback.set_running(False)
        self.load_model(self.options.model.weights)

    def load_model(self, weights: str | None) -> None:
        """Load another model in the background; the current one keeps running meanwhile."""
        choice = self.options.model if weights is None else replace(self.options.model, weights=weights)
        self.window.controls.model.set_busy(True)
        if self.model is None:
            self.window.view.set_state(ViewState("Loading model…", Path(weights).name if weights else "bundled model"))
        self.loader.load(choice)

    def open_source(self, source: str) -> None:
        """Switch to another source; a source that cannot exist leaves the current one playing."""
        try:
            display = parse_source(source).display
        except UserError as exc:
            self._show_error(f"Cannot open source: {exc}")
            return
        self.source = source
        self.set_paused(False)  # a paused view would hide the new source entirely
        self.window.controls.source.set_source(display)
        self.window.view.clear()
        self.window.chart.clear()
        self.window.status.reset()
        self.window.clear_error()
        if self.model is not None:
            self._start_pipeline()

    def set_mode(self, kind: str, value: float) -> None:
        self.kind, self.mode_value = kind, value
        self._apply_mode()

    def set_target_fps(self, fps: float) -> None:
        self.target_fps = fps
        self._auto_target = False
        if self.kind == "target_fps":
            self._apply_mode()

    def set_loop(self, enabled: bool) -> None:
        self.loop = enabled
        if self.pipeline is not None:
            self.pipeline.set_loop(enabled)

    def set_paused(self, paused: bool) -> None:
        """Hold a file where it is; a live source keeps running (and recording) behind a held picture."""
        self.paused = paused
        held = False  # whether the source itself stopped (a file), not just the picture
        if self.pipeline is not None and paused:
            held = self.pipeline.pause()
        elif self.pipeline is not None:
            self.pipeline.resume()
        self.window.controls.playback.set_paused(paused)
        hint = "press Space to continue" if held else "the stream keeps running; press Space to go back to live"
        self.window.view.set_state(ViewState("Paused", hint) if paused else None)

    def set_running(self, running: bool) -> None:
        """Stop the pipeline (freeing the source and the CPU) or start it again."""
        if running:
            self.window.clear_error()
            self.set_paused(False)
            self._start_pipeline()
        else:
            self._stop_pipeline()
            self.window.view.set_state(ViewState("Stopped", "press Start to play again"))

    def set_recording(self, recording: bool, path: str) -> None:
        """Start or stop recording into the running pipeline (the next pipeline starts with it)."""
        self.record_path = path if recording else None
        if self.pipeline is None:
            return
        if not recording:
            self.pipeline.stop_recording()  # flushed and closed
            self.window.show_notice(f"Recording saved to {path}")
            return
        try:
            self.pipeline.start_recording(path)
        except UserError as exc:
            self.record_path = None
            self.window.controls.playback.set_recording(False)
            self._show_error(f"Cannot record: {exc}")

    def set_classes(self, names: tuple[str, ...]) -> None:
        """Draw only these classes (all when empty); also used by the next recording."""
        self.classes = tuple(names)
        self.window.view.set_class_filter(self.classes)
        if self.pipeline is not None:
            self.pipeline.set_classes(self.classes)

    def shutdown(self) -> None:
        """Stop everything (the recording is flushed); safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._stop_pipeline(reuse_model=False)
        self.bridge.detach()

    # ----------------------------------------------------------------- pipeline lifecycle

    @property
    def frames_processed(self) -> int:
        """Frames processed by every pipeline of this session."""
        current = self.pipeline.stats.engine.frames_processed if self.pipeline is not None else 0
        return self._processed_before + current

    def routing_mode(self) -> RoutingMode:
        """The mode the controls currently ask for."""
        return mode_from_controls(self.kind, self.mode_value, self.target_fps)

    def _apply_mode(self) -> None:
        if self.pipeline is None:
            return
        try:
            self.pipeline.set_mode(self.routing_mode())
        except UserError as exc:
            self._show_error(str(exc))

    def _start_pipeline(self) -> None:
        """(Re)build the pipeline for the current source, model, mode and recording, and start it."""
        from engine.runtime.pipeline import Pipeline, PipelineConfig  # model code: only once a model exists

        self._stop_pipeline()
        if self.model is None or self._closed:
            return
        config = PipelineConfig(source=self.source, mode=self.routing_mode(), realtime=True,
                                record=self.record_path, classes=self.classes, live_results=True, loop=self.loop)
        try:
            pipeline = Pipeline(config, self.model.predictor, self.model.calibration)
            pipeline.start()
        except UserError as exc:
            self._on_start_failed(str(exc))
            return
        self.pipeline = pipeline
        self.window.status.set_source(source_kind(self.source))
        self.bridge.attach(pipeline)
        self.window.controls.playback.set_running(True)
        if self.paused:
            pipeline.pause()
        if not self.paused and self.window.view.result is None:
            self.window.view.set_state(ViewState("Connecting…", self._display(self.source)))

    def _on_start_failed(self, message: str) -> None:
        if self.record_path is not None:
            # Most likely the recording path: drop the recording and play without it.
            self.record_path = None
            self.window.controls.playback.set_recording(False)
            self._show_error(f"Cannot record: {message}")
            self._start_pipeline()
            return
        self._show_error(f"Cannot open source: {message}")
        self.window.view.set_state(ViewState("Cannot open source", message, "error"))
        self.window.controls.playback.set_running(False)

    def _stop_pipeline(self, reuse_model: bool = True) -> None:
        """Stop and join the pipeline; with ``reuse_model``, make sure its engine let go of the model."""
        if self.pipeline is None:
            return
        self.bridge.detach()
        pipeline, self.pipeline = self.pipeline, None
        engine = pipeline.stats.engine
        self._processed_before += engine.frames_processed
        self._second_before += engine.frames_second_exit
        if not pipeline.shutdown(timeout=STOP_TIMEOUT):
            logger.warning("a pipeline worker did not stop in time; the recording may be incomplete")
            # The next pipeline reuses the predictor, which only one engine thread may use.
            if reuse_model and not pipeline.engine.join(ENGINE_GRACE):
                logger.error("the engine is still running after %.0f s", STOP_TIMEOUT + ENGINE_GRACE)
        self.window.controls.playback.set_running(False)
        if self.record_path is not None and not self._closed:
            # A recording ends with its pipeline; the next one must not overwrite it.
            saved, self.record_path = self.record_path, None
            self.window.controls.playback.set_recording(False)
            self.window.show_notice(f"Recording saved to {saved}")

    # ----------------------------------------------------------------- pipeline output

    def summary(self) -> dict:
        """The run so far in the ``run`` command's terms (rates over every pipeline of the session)."""
        processed = self.frames_processed
        stats = self.pipeline.stats if self.pipeline is not None else None
        second = self._second_before + (stats.engine.frames_second_exit if stats else 0)
        elapsed = time.monotonic() - self._first_result_at if self._first_result_at is not None else 0.0
        return {
            "source": self._display(self.source),
            "frames_processed": processed,
            "frames_dropped": stats.frames_dropped if stats else None,
            "processing_fps": round(processed / elapsed, 2) if elapsed > 0 else 0.0,
            "second_exit_fraction": round(second / processed, 4) if processed else 0.0,
            "target_fps": self.target_fps if self.kind == "target_fps" else None,
            "mean_latency_ms": round(stats.engine.mean_latency_ms, 2) if stats else None,
            "p95_latency_ms": round(stats.engine.p95_latency_ms, 2) if stats else None,
        }

    def _on_result(self, result: Result) -> None:
        if self._first_result_at is None:
            # The first frame's own processing time is part of the run's rate, as in `run`.
            self._first_result_at = time.monotonic() - result.latency_ms / 1000
        if not self.paused:
            self.window.view.show_result(result)
            self.window.view.set_state(None)
            self.window.chart.add_frame(result.detections)
        self.framesProcessed.emit(self.frames_processed)

    def _on_stats(self, stats: PipelineStats) -> None:
        # The source's rate first: no number on screen may show a target the source cannot feed.
        source_fps = stats.capture.fps or self.window.status.measured_source_fps
        self._fit_auto_target(source_fps)
        target = self.target_fps if self.kind == "target_fps" else None
        self.window.status.update_stats(stats, target, self.record_path)
        if stats.engine.frames_processed >= 2:  # before that the rate is unknown, not zero
            self.window.chart.add_rate(stats.engine.processing_fps, target)
        self.window.chart.refresh()
        costs = stats.engine.controller or (self.model.calibration if self.model is not None else None)
        if costs is not None and costs.exit1_ms > 0:
            self.window.controls.routing.update_costs(costs.exit1_ms, costs.exit2_ms, source_fps)
        if stats.writer is not None and stats.writer.state == "failed" and self.record_path is not None:
            self.record_path = None
            self.window.controls.playback.set_recording(False)
            self._show_error(stats.writer.last_error or "recording failed")
        if not self.paused:
            self.window.view.set_state(self._live_state(stats))

    def _fit_auto_target(self, source_fps: float | None) -> None:
        """An automatic target above the source's frame rate could never be met: use the source's rate."""
        if not self._auto_target or not source_fps or self.target_fps is None or self.target_fps <= source_fps:
            return
        self.target_fps = round(source_fps, 1)
        self.window.controls.routing.set_target_fps(self.target_fps)
        if self.kind == "target_fps":
            self._apply_mode()

    def _live_state(self, stats: PipelineStats) -> ViewState | None:
        """Offline, connecting, or stale: never let a frozen frame pass for live."""
        state = offline_state(stats.capture)
        if state is not None:
            return state
        age = self.window.view.frame_age()
        fps = stats.engine.processing_fps
        # A slow model is not a stalled source: allow a few of its own frame intervals.
        if age is not None and age > max(STALE_AFTER, 3.0 / fps if fps > 0 else 0.0):
            return ViewState("No new frames", f"the last one arrived {age:.0f} s ago", "warning")
        return self.window.view.state if self.window.view.result is None else None

    def _on_stream_end(self, end: StreamEnd) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        if end.failed:
            error = str(end.error) if end.error else "stream failed"
            self._stop_pipeline()
            self._show_error(error)
            self.window.view.set_state(ViewState("Source failed", error, "error"))
            self.streamFinished.emit("failed")
            return
        if end.reason != "eof":
            return
        self._stop_pipeline()
        self.window.view.set_state(ViewState("End of video", "press Start to play it again"))
        self.streamFinished.emit("eof")

    # ----------------------------------------------------------------- model loading

    def _on_model_loaded(self, model: LoadedModel) -> None:
        if self._closed:
            return
        self.model = model
        controls = self.window.controls
        controls.model.set_busy(False)
        controls.model.set_model(model.path, f"{len(model.class_names)} classes · {model.choice.backend} backend")
        self.classes = tuple(name for name in self.classes if name in model.class_names)
        controls.classes.set_classes(model.class_names, self.classes)
        self.window.view.set_class_filter(self.classes)
        calibration = model.calibration
        if calibration is not None and calibration.exit1_ms > 0:
            controls.routing.update_costs(calibration.exit1_ms, calibration.exit2_ms)
            if self.target_fps is None:
                self.target_fps = round(2000.0 / (calibration.exit1_ms + calibration.exit2_ms), 1)
        if self.target_fps is None:
            self.target_fps = 10.0
        controls.routing.set_target_fps(self.target_fps)
        self.window.clear_error()
        self._start_pipeline()

    def _on_model_failed(self, message: str) -> None:
        if self._closed:
            return
        self.window.controls.model.set_busy(False)
        self._show_error(f"Cannot load model: {message}")
        if self.model is None:
            self.window.view.set_state(ViewState("No model loaded", message, "error"))

    # ----------------------------------------------------------------- helpers

    def _show_error(self, message: str) -> None:
        logger.info("shown to the user: %s", message)
        self.window.show_error(message)
        self.errorShown.emit(message)

    @staticmethod
    def _display(source: str) -> str:
        try:
            return parse_source(source).display
        except UserError:
            return source
