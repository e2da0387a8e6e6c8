"""The multi-camera window: the camera grid on the left, routing and telemetry on the right."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QVBoxLayout, QWidget

from app.gui.camera_grid import CameraGrid
from app.gui.camera_telemetry import CameraTelemetry
from app.gui.controls import PANEL_WIDTH
from app.gui.main_window import NOTICE_MS, ErrorBanner
from app.gui.routing_controls import RoutingControls

logger = logging.getLogger(__name__)

HINT = "Click a camera to enlarge it; click again or press Esc for the grid. The target is the total over all cameras."


class CameraWindow(QMainWindow):
    """Signals:
        closing(): the window is closing; everything must stop now.
    """

    closing = pyqtSignal()

    def __init__(self, names: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"DynaStream · {len(names)} camera{'s' if len(names) != 1 else ''}")
        self.grid = CameraGrid(names)
        self.routing = RoutingControls()
        self.telemetry = CameraTelemetry(names)
        self.banner = ErrorBanner()
        self._layout_widgets()
        self._add_shortcuts()
        self.resize(1280, 720)  # a 2 x 2 grid of 16:9 or 5:3 cameras, with little letterboxing

    def _layout_widgets(self) -> None:
        hint = QLabel(HINT)
        hint.setObjectName("statusName")
        hint.setWordWrap(True)
        panel = QWidget()
        panel.setFixedWidth(PANEL_WIDTH)
        column = QVBoxLayout(panel)
        column.setContentsMargins(6, 0, 0, 0)
        column.addWidget(self.routing)
        column.addWidget(self.telemetry)
        column.addWidget(hint)
        column.addStretch(1)
        self.panel = panel
        left = QVBoxLayout()
        left.addWidget(self.banner)
        left.addWidget(self.grid, 1)
        central = QWidget()
        columns = QHBoxLayout(central)
        columns.setContentsMargins(6, 6, 6, 6)
        columns.addLayout(left, 1)
        columns.addWidget(panel)
        self.setCentralWidget(central)

    def _add_shortcuts(self) -> None:
        bindings = {
            "F": self.toggle_fullscreen,
            "Esc": self.go_back,
            "+": lambda: self.routing.step_target_fps(+1),
            "=": lambda: self.routing.step_target_fps(+1),  # "+" without Shift on most layouts
            "-": lambda: self.routing.step_target_fps(-1),
        }
        self._shortcuts = []
        for keys, action in bindings.items():
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(action)
            self._shortcuts.append(shortcut)

    def show_error(self, text: str) -> None:
        self.banner.show_message(text)

    def clear_error(self) -> None:
        self.banner.hide()

    def error_text(self) -> str:
        """The banner's message, or "" when no error is shown."""
        return "" if self.banner.isHidden() else self.banner.label.text()

    def show_notice(self, text: str) -> None:
        self.statusBar().showMessage(text, NOTICE_MS)

    def go_back(self) -> None:
        """Esc: from an enlarged camera back to the grid, else out of full screen."""
        if self.grid.enlarged:
            self.grid.show_all()
        else:
            self.leave_fullscreen()

    def toggle_fullscreen(self) -> None:
        """Cameras only, full screen; F again (or Esc) brings the panel back."""
        if self.isFullScreen():
            self.leave_fullscreen()
            return
        self.panel.hide()
        self.showFullScreen()

    def leave_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        self.panel.show()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closing.emit()
        super().closeEvent(event)
