"""Live numbers: processing rate against the target, source rate, latency, exit-2 share,
dropped frames, the stream's connection state and the recording."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import QGridLayout, QGroupBox, QLabel, QWidget

from app.gui.theme import ERROR, GOOD, TEXT, WARNING
from app.gui.video_view import ViewState
from engine.runtime.capture import CaptureStats
from engine.runtime.controller import ControllerState

if TYPE_CHECKING:  # engine.runtime.pipeline imports the model code (and torch) at import time
    from engine.runtime.pipeline import PipelineStats

logger = logging.getLogger(__name__)

ROWS = ("Processing", "Source", "Latency", "Exit-2 share", "Dropped", "Stream", "Recording")


def describe_capture(capture: CaptureStats) -> tuple[str, QColor]:
    """The connection state in words, and the colour to show it in."""
    state = capture.state
    if state == "live":
        suffix = f" ({capture.reconnects} reconnect{'s' if capture.reconnects != 1 else ''})" \
            if capture.reconnects else ""
        return f"live{suffix}", GOOD
    if state == "reconnecting":
        wait = f" in {capture.next_retry_in:.0f} s…" if capture.next_retry_in is not None else "…"
        return f"offline, reconnecting{wait}", WARNING
    if state == "connecting":
        return "connecting…", WARNING
    if state == "failed":
        return "failed", ERROR
    return {"eof": "ended", "stopped": "stopped"}.get(state, state), TEXT


def offline_state(capture: CaptureStats) -> ViewState | None:
    """What the video view shows instead of "live" while the source delivers no frames."""
    if capture.state == "reconnecting":
        wait = f"Reconnecting in {capture.next_retry_in:.0f} s…" if capture.next_retry_in is not None \
            else "Reconnecting…"
        reason = f"\n{capture.last_error}" if capture.last_error else ""
        return ViewState("Stream offline", wait + reason, "warning")
    if capture.state == "connecting":
        return ViewState("Connecting…", "waiting for the first frame", "info")
    return None


class StatusPanel(QGroupBox):
    """A grid of name / value rows, refreshed from pipeline stats a few times a second."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Telemetry", parent)
        grid = QGridLayout(self)
        grid.setVerticalSpacing(3)
        self._values: dict[str, QLabel] = {}
        for row, name in enumerate(ROWS):
            label, value = QLabel(name), QLabel("–")
            label.setObjectName("statusName")
            value.setObjectName("statusValue")
            grid.addWidget(label, row, 0)
            grid.addWidget(value, row, 1)
            self._values[name] = value
        grid.setColumnStretch(1, 1)

    def text(self, row: str) -> str:
        """The value shown in ``row`` (one of :data:`ROWS`)."""
        return self._values[row].text()

    def reset(self) -> None:
        """Clear every value (a new source or model)."""
        for value in self._values.values():
            self._set(value, "–", TEXT)

    def update_stats(self, stats: PipelineStats, target_fps: float | None, recording: str | None) -> None:
        """Refresh every row; ``target_fps`` is None outside "hold target FPS" mode."""
        engine, capture = stats.engine, stats.capture
        self._set_processing(engine.processing_fps, target_fps, engine.controller)
        source = f"{capture.fps:.1f} fps" if capture.fps else "rate unknown"
        if capture.width:
            source += f" · {capture.width}×{capture.height}"
        self._set(self._values["Source"], source, TEXT)
        latency = f"{engine.recent_latency_ms:.0f} ms (p95 {engine.recent_p95_latency_ms:.0f})"
        self._set(self._values["Latency"], latency, TEXT)
        self._set(self._values["Exit-2 share"], f"{engine.second_exit_fraction:.0%}", TEXT)
        self._set(self._values["Dropped"], f"{stats.frames_dropped} frames", TEXT)
        self._set(self._values["Stream"], *describe_capture(capture))
        if recording:
            self._set(self._values["Recording"], f"{stats.frames_recorded} frames → {Path(recording).name}", ERROR)
        else:
            self._set(self._values["Recording"], "off", TEXT)

    def _set_processing(self, fps: float, target_fps: float | None, controller: ControllerState | None) -> None:
        value = self._values["Processing"]
        if target_fps is None:
            self._set(value, f"{fps:.1f} fps", TEXT)
            return
        text = f"{fps:.1f} / {target_fps:.1f} fps"
        value.setToolTip("")
        if controller is not None and not controller.reachable:
            self._set(value, f"{text} · too high", WARNING)
            value.setToolTip(f"exit 1 alone takes {controller.exit1_ms:.0f} ms per frame: "
                             f"at most {1000 / controller.exit1_ms:.1f} fps")
        else:
            self._set(value, text, GOOD if fps >= 0.9 * target_fps else WARNING)

    @staticmethod
    def _set(label: QLabel, text: str, color: QColor) -> None:
        label.setText(text)
        label.setStyleSheet(f"color: {color.name()};")
