"""The multi-camera session: owns the monitor and the model, and is the one place that wires the
camera window's widgets to them.

The model named in ``cameras.yaml`` loads in the background; then one
:class:`~engine.runtime.monitor.Monitor` runs every camera on it under one budget. Routing
changes from the controls go to the running monitor (the target is the total over all
cameras); results and stats come back through a :class:`CameraBridge` and are painted per tile.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, pyqtSignal

from app.gui.camera_bridge import CameraBridge
from app.gui.camera_grid import camera_status
from app.gui.camera_window import CameraWindow
from app.gui.model_loader import LoadedModel, ModelLoader
from app.gui.telemetry import source_kind
from app.gui.video_view import ViewState
from engine.errors import UserError
from engine.runtime.frames import Result
from engine.runtime.monitor import CameraStats, Monitor
from engine.runtime.monitor_config import MonitorConfig
from engine.runtime.queues import StreamEnd
from engine.runtime.routing import RoutingMode, mode_from_controls

if TYPE_CHECKING:
    from app.commands.monitor import CameraSinks

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 2.0  # per worker; the window must close within a few seconds


@dataclass(frozen=True)
class CameraOptions:
    """What to start with: the cameras, model and budget of ``cameras.yaml``, and the ``gui`` options.

    Attributes:
        config: the loaded ``cameras.yaml``.
        target_fps: a total target to hold at start instead of the file's budget.
    """

    config: MonitorConfig
    target_fps: float | None = None

    @property
    def names(self) -> list[str]:
        return [camera.name for camera in self.config.cameras]


class MultiSession(QObject):
    """Signals:
        framesProcessed(total): a result was shown; ``total`` counts frames processed over all cameras.
        errorShown(message): a problem that stops the whole run was reported (one camera's
            failure shows in its tile and is not one of these).
        streamFinished(reason): every camera ended ("eof", or "failed" when none delivered a frame).
    """

    framesProcessed = pyqtSignal(int)
    errorShown = pyqtSignal(str)
    streamFinished = pyqtSignal(str)

    def __init__(self, window: CameraWindow, options: CameraOptions) -> None:
        super().__init__(window)
        self.window = window
        self.options = options
        self.bridge = CameraBridge(self)
        self.loader = ModelLoader(self)
        self.monitor: Monitor | None = None
        self.sinks: CameraSinks | None = None
        self.model: LoadedModel | None = None
        mode = options.config.budget.mode()
        self.kind, self.mode_value = mode.kind, mode.value if mode.value is not None else math.nan
        self.target_fps = options.target_fps or options.config.budget.target_fps
        if options.target_fps is not None:
            self.kind, self.mode_value = "target_fps", options.target_fps
        self.processed = 0
        self._kinds = {camera.name: source_kind(camera.source) for camera in options.config.cameras}
        self._first_result_at: float | None = None
        self._closed = False
        self._wire()

    def _wire(self) -> None:
        self.window.routing.modeChanged.connect(self.set_mode)
        self.window.routing.targetFpsChanged.connect(self.set_target_fps)
        self.window.closing.connect(self.shutdown)
        self.bridge.resultReady.connect(self._on_result)
        self.bridge.statsReady.connect(self._on_stats)
        self.bridge.cameraEnded.connect(self._on_camera_ended)
        self.bridge.allEnded.connect(self._on_all_ended)
        self.loader.loaded.connect(self._on_model_loaded)
        self.loader.failed.connect(self._on_model_failed)

    # ----------------------------------------------------------------- user intents

    def start(self) -> None:
        """Load the model; the cameras start once it is ready."""
        self.window.routing.set_mode(self.kind, None if math.isnan(self.mode_value) else self.mode_value)
        if self.target_fps is not None:
            self.window.routing.set_target_fps(self.target_fps)
        model = self.options.config.model
        weights = model.weights or "bundled model"
        for tile in self.window.grid.tiles.values():
            tile.view.set_state(ViewState("Loading model…", weights))
        self.loader.load(model)  # cameras.yaml's model section is the GUI's model choice

    def set_mode(self, kind: str, value: float) -> None:
        self.kind, self.mode_value = kind, value
        self._apply_mode()

    def set_target_fps(self, fps: float) -> None:
        """The total processing rate over all cameras."""
        self.target_fps = fps
        if self.kind == "target_fps":
            self._apply_mode()

    def shutdown(self) -> None:
        """Stop every camera (recordings are flushed); safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self.bridge.detach()
        if self.monitor is not None and not self.monitor.shutdown(timeout=STOP_TIMEOUT):
            logger.warning("a monitor worker did not stop in time; a recording may be incomplete")
        if self.sinks is not None:
            for problem in self.sinks.close():
                logger.warning("%s", problem)

    def routing_mode(self) -> RoutingMode:
        """The mode the controls currently ask for."""
        return mode_from_controls(self.kind, self.mode_value, self.target_fps)

    def _apply_mode(self) -> None:
        if self.monitor is None:
            return
        try:
            self.monitor.set_mode(self.routing_mode())
        except UserError as exc:
            self._show_error(str(exc))

    # ----------------------------------------------------------------- model and monitor

    def _on_model_loaded(self, model: LoadedModel) -> None:
        if self._closed:
            return
        self.model = model
        calibration = model.calibration
        if calibration is not None and calibration.exit1_ms > 0:
            self.window.routing.update_costs(calibration.exit1_ms, calibration.exit2_ms)
            if self.target_fps is None:
                self.target_fps = round(2000.0 / (calibration.exit1_ms + calibration.exit2_ms), 1)
        if self.target_fps is None:
            self.target_fps = 10.0
        self.window.routing.set_target_fps(self.target_fps)
        try:
            self._start_monitor(model)
        except UserError as exc:
            self._show_error(f"Cannot start the cameras: {exc}")
            for tile in self.window.grid.tiles.values():
                tile.view.set_state(ViewState("Not started", str(exc), "error"))

    def _start_monitor(self, model: LoadedModel) -> None:
        from app.commands.monitor import CameraSinks

        cameras = self.options.config.cameras
        for camera in cameras:
            unknown = [name for name in camera.classes if name not in model.class_names]
            if unknown:
                raise UserError(f"camera {camera.name}: unknown class {unknown[0]!r} "
                                f"(the model knows: {', '.join(model.class_names)})")
        sinks = CameraSinks.open(cameras, None)
        try:
            budget = self.options.config.budget
            monitor = Monitor(cameras, model.predictor, self.routing_mode(), budget.allocation, model.calibration,
                              max_batch=budget.batch)
            monitor.start()
        except BaseException:
            sinks.close()
            raise
        self.monitor, self.sinks = monitor, sinks
        self.bridge.attach(monitor, sinks.offer)

    def _on_model_failed(self, message: str) -> None:
        if self._closed:
            return
        self._show_error(f"Cannot load model: {message}")
        for tile in self.window.grid.tiles.values():
            tile.view.set_state(ViewState("No model loaded", message, "error"))

    # ----------------------------------------------------------------- monitor output

    def _on_result(self, camera: str, result: Result, processed: int) -> None:
        if self._first_result_at is None:
            self._first_result_at = time.monotonic() - result.latency_ms / 1000
        self.processed = processed
        self.window.grid.show_result(camera, result)
        self.framesProcessed.emit(processed)

    def _on_stats(self, stats: dict[str, CameraStats]) -> None:
        for name, camera in stats.items():
            self.window.grid.set_status(name, camera_status(camera, self._kinds.get(name)))
        self.window.telemetry.update_stats(stats, self.target_fps if self.kind == "target_fps" else None)

    def _on_camera_ended(self, camera: str, end: StreamEnd) -> None:
        if end.failed:
            logger.info("camera %s failed: %s", camera, end.error)

    def _on_all_ended(self) -> None:
        if self.monitor is None:
            return
        self.streamFinished.emit("eof" if self.processed else "failed")

    def summary(self) -> dict:
        """The run so far in the ``monitor`` command's terms (per camera and in total)."""
        elapsed = time.monotonic() - self._first_result_at if self._first_result_at is not None else 0.0
        cameras, total, second = {}, 0, 0
        for name in self.options.names:
            stats = self.monitor.stats(name) if self.monitor is not None else None
            processed = stats.lane.frames_processed if stats else 0
            total, second = total + processed, second + (stats.lane.frames_second_exit if stats else 0)
            cameras[name] = {
                "state": stats.state if stats else "not started",
                "frames_processed": processed,
                "processing_fps": round(processed / elapsed, 2) if elapsed > 0 else 0.0,
                "second_exit_fraction": round(stats.lane.second_exit_fraction, 4) if stats else 0.0,
            }
            if stats is not None and stats.failure:
                cameras[name]["error"] = stats.failure
        return {
            "cameras": cameras,
            "frames_processed": total,
            "processing_fps": round(total / elapsed, 2) if elapsed > 0 else 0.0,
            "second_exit_fraction": round(second / total, 4) if total else 0.0,
            "target_fps": self.target_fps if self.kind == "target_fps" else None,
            "mode": self.routing_mode().describe(),
            "allocation": self.options.config.budget.allocation,
        }

    def _show_error(self, message: str) -> None:
        logger.info("shown to the user: %s", message)
        self.window.show_error(message)
        self.errorShown.emit(message)
