"""Where frames and the model come from: file, camera or stream URL; the model file."""

from __future__ import annotations

import logging
from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

logger = logging.getLogger(__name__)

VIDEO_FILTER = "Videos (*.mp4 *.mkv *.mov *.avi *.webm *.m4v *.ts);;All files (*)"
MODEL_FILTER = "Models (*.safetensors *.pt *.pth);;All files (*)"


class SourceControls(QGroupBox):
    """Source picker.

    Signals:
        sourceRequested(source): a file path, a camera index or a URL to play.
        loopToggled(enabled): whether video files restart when they end.
    """

    sourceRequested = pyqtSignal(str)
    loopToggled = pyqtSignal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Source", parent)
        self.current = QLabel("–")
        self.current.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.file_button = QPushButton("Open file…")
        self.camera_index = QSpinBox()
        self.camera_index.setRange(0, 63)
        self.camera_index.setPrefix("camera ")
        self.camera_button = QPushButton("Open")
        self.url_field = QLineEdit()
        self.url_field.setPlaceholderText("rtsp://… or http(s)://…")
        self.url_button = QPushButton("Open")
        self.loop_box = QCheckBox("Loop video files")
        self.loop_box.setChecked(True)
        self._layout_widgets()
        self.file_button.clicked.connect(self._pick_file)
        self.camera_button.clicked.connect(lambda: self.sourceRequested.emit(str(self.camera_index.value())))
        self.url_button.clicked.connect(self._open_url)
        self.url_field.returnPressed.connect(self._open_url)
        self.loop_box.toggled.connect(self.loopToggled)

    def _layout_widgets(self) -> None:
        grid = QGridLayout(self)
        grid.addWidget(self.current, 0, 0, 1, 2)
        grid.addWidget(self.file_button, 1, 0, 1, 2)
        grid.addWidget(self.camera_index, 2, 0)
        grid.addWidget(self.camera_button, 2, 1)
        grid.addWidget(self.url_field, 3, 0)
        grid.addWidget(self.url_button, 3, 1)
        grid.addWidget(self.loop_box, 4, 0, 1, 2)
        grid.setColumnStretch(0, 1)

    def set_source(self, display: str) -> None:
        """Show which source is playing (long paths are elided in the middle)."""
        self.current.setToolTip(display)
        width = max(self.width() - 30, 200)
        self.current.setText(self.fontMetrics().elidedText(display, Qt.TextElideMode.ElideMiddle, width))

    def set_loop(self, enabled: bool) -> None:
        self.loop_box.blockSignals(True)
        self.loop_box.setChecked(enabled)
        self.loop_box.blockSignals(False)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", "", VIDEO_FILTER)
        if path:
            self.sourceRequested.emit(path)

    def _open_url(self) -> None:
        url = self.url_field.text().strip()
        if url:
            self.sourceRequested.emit(url)


class ModelControls(QGroupBox):
    """Model picker.

    Signals:
        modelRequested(path): a model file to load in place of the current one.
    """

    modelRequested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.current = QLabel("–")
        self.current.setWordWrap(True)
        self.load_button = QPushButton("Load model…")
        row = QHBoxLayout(self)
        row.addWidget(self.current, 1)
        row.addWidget(self.load_button)
        self.load_button.clicked.connect(self._pick_file)

    def set_model(self, path: str, detail: str = "") -> None:
        """Show the model in use, e.g. ``tiny.safetensors`` and ``3 classes``."""
        self.current.setToolTip(path)
        self.current.setText(Path(path).name + (f"\n{detail}" if detail else ""))

    def set_busy(self, busy: bool) -> None:
        """Disable the picker while a model loads."""
        self.load_button.setEnabled(not busy)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a model", "", MODEL_FILTER)
        if path:
            self.modelRequested.emit(path)
