"""Play/pause, start/stop, and the recording toggle with its output file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QFileDialog, QGridLayout, QGroupBox, QLineEdit, QPushButton, QWidget

logger = logging.getLogger(__name__)

RECORD_FILTER = "MP4 video (*.mp4);;Matroska video (*.mkv)"


def default_recording_path(folder: Path | None = None) -> Path:
    """A fresh, time-stamped recording name under ``folder`` (default ``./runs``)."""
    folder = folder if folder is not None else Path.cwd() / "runs"
    return folder / f"rec-{time.strftime('%Y%m%d-%H%M%S')}.mp4"


class PlaybackControls(QGroupBox):
    """Transport and recording buttons.

    Signals:
        playPauseToggled(paused): hold playback (a file stops where it is), or continue.
        runToggled(running): start the pipeline again, or stop it (freeing the source and CPU).
        recordToggled(recording, path): start recording to ``path``, or stop recording.
    """

    playPauseToggled = pyqtSignal(bool)
    runToggled = pyqtSignal(bool)
    recordToggled = pyqtSignal(bool, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Playback", parent)
        self.play_button = QPushButton("Pause")
        self.play_button.setToolTip("Pause or continue (Space)")
        self.run_button = QPushButton("Stop")
        self.run_button.setToolTip("Stop or restart processing")
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record the annotated video (R)")
        self.record_path = QLineEdit(str(default_recording_path()))
        self.record_path.setToolTip("Where the recording goes (.mp4 or .mkv)")
        self.browse_button = QPushButton("Save as…")
        self.browse_button.setToolTip("Choose where the recording goes")
        grid = QGridLayout(self)
        grid.addWidget(self.play_button, 0, 0)
        grid.addWidget(self.run_button, 0, 1, 1, 2)
        grid.addWidget(self.record_button, 1, 0)
        grid.addWidget(self.browse_button, 1, 1, 1, 2)
        grid.addWidget(self.record_path, 2, 0, 1, 3)  # a row of its own: paths are long
        self._paused = False
        self._running = True
        self.play_button.clicked.connect(self.toggle_play_pause)
        self.run_button.clicked.connect(lambda: self.runToggled.emit(not self._running))
        self.record_button.toggled.connect(self._on_record_toggled)
        self.browse_button.clicked.connect(self._choose_output)

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def recording(self) -> bool:
        return self.record_button.isChecked()

    def toggle_play_pause(self) -> None:
        """Flip between paused and live, and emit the new state (the Space key)."""
        self.set_paused(not self._paused)
        self.playPauseToggled.emit(self._paused)

    def toggle_record(self) -> None:
        """Start or stop recording (the R key)."""
        self.record_button.toggle()

    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self.play_button.setText("Play" if paused else "Pause")

    def set_running(self, running: bool) -> None:
        """Reflect whether the pipeline runs; pausing only makes sense while it does."""
        self._running = running
        self.run_button.setText("Stop" if running else "Start")
        self.play_button.setEnabled(running)

    def set_recording(self, recording: bool, path: str | None = None) -> None:
        """Reflect the recording state without emitting (e.g. after a recording failed)."""
        self.record_button.blockSignals(True)
        self.record_button.setChecked(recording)
        self.record_button.blockSignals(False)
        self.record_button.setText("■ Stop recording" if recording else "● Record")
        self.record_path.setEnabled(not recording)
        self.browse_button.setEnabled(not recording)
        if path:
            self.record_path.setText(path)

    def _on_record_toggled(self, recording: bool) -> None:
        path = self.record_path.text().strip() or str(default_recording_path())
        self.set_recording(recording, path if recording else None)
        if not recording:
            # Offer a fresh name so that the next recording does not overwrite this one.
            self.record_path.setText(str(default_recording_path(Path(path).parent)))
        self.recordToggled.emit(recording, path)

    def _choose_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Record to", self.record_path.text(), RECORD_FILTER)
        if path:
            self.record_path.setText(path)
