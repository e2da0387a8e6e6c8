"""The main window: layout, the error banner, keyboard shortcuts, fullscreen, close."""

from __future__ import annotations

import logging

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QPushButton, QSplitter, QVBoxLayout, QWidget

from app.gui.chart import TelemetryChart
from app.gui.controls import ControlPanel
from app.gui.telemetry import StatusPanel
from app.gui.video_view import VideoView

logger = logging.getLogger(__name__)

STATUS_WIDTH = 320
TELEMETRY_HEIGHT = 270  # at start; the video gets the rest of the height
MIN_TELEMETRY_HEIGHT = 180
NOTICE_MS = 6000


class ErrorBanner(QWidget):
    """A red strip above the video with the latest problem; stays until dismissed or resolved."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setObjectName("errorBanner")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dismiss = QPushButton("Dismiss")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.dismiss)
        self.dismiss.clicked.connect(self.hide)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()


class AppWindow(QMainWindow):
    """What every DynaStream window has: an error banner, status-bar notices, keyboard shortcuts
    and a full-screen mode that hides the side panels.

    Signals:
        closing(): the window is closing; everything must stop now.
    """

    closing = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.banner = ErrorBanner()
        self._shortcuts: list[QShortcut] = []

    def _bind_keys(self, bindings: dict) -> None:
        """Window-wide shortcuts: key sequence -> action."""
        for keys, action in bindings.items():
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(action)
            self._shortcuts.append(shortcut)

    def _panels(self) -> list[QWidget]:
        """The widgets full screen hides (everything but the pictures)."""
        raise NotImplementedError

    def _lay_out(self, pictures: QWidget, panel: QWidget) -> None:
        """The window's one layout: the error banner over the pictures on the left, the side panel on the right."""
        left = QVBoxLayout()
        left.addWidget(self.banner)
        left.addWidget(pictures, 1)
        central = QWidget()
        columns = QHBoxLayout(central)
        columns.setContentsMargins(6, 6, 6, 6)
        columns.addLayout(left, 1)
        columns.addWidget(panel)
        self.setCentralWidget(central)

    def show_error(self, text: str) -> None:
        """Show a problem in the window (the banner); the terminal is not where users look."""
        self.banner.show_message(text)

    def clear_error(self) -> None:
        self.banner.hide()

    def error_text(self) -> str:
        """The banner's message, or "" when no error is shown."""
        return "" if self.banner.isHidden() else self.banner.label.text()

    def show_notice(self, text: str) -> None:
        """A passing message in the status bar (e.g. where a recording was saved)."""
        self.statusBar().showMessage(text, NOTICE_MS)

    def notice_text(self) -> str:
        """The status bar's passing message, or "" when none is shown."""
        return self.statusBar().currentMessage()

    def toggle_fullscreen(self) -> None:
        """Pictures only, full screen; F again (or Esc) brings the panels back."""
        if self.isFullScreen():
            self.leave_fullscreen()
            return
        for panel in self._panels():
            panel.hide()
        self.showFullScreen()

    def leave_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        for panel in self._panels():
            panel.show()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closing.emit()
        super().closeEvent(event)


class MainWindow(AppWindow):
    """Video on the left with telemetry below, controls on the right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DynaStream")
        self.view = VideoView()
        self.controls = ControlPanel()
        self.status = StatusPanel()
        self.status.setFixedWidth(STATUS_WIDTH)
        self.chart = TelemetryChart()
        self._layout_widgets()
        self._add_shortcuts()
        # Keyboard focus starts on (and returns to, when clicked) the video: text fields take
        # Space and letters for themselves, which would swallow the shortcuts.
        self.view.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.view.setFocus()
        self.resize(1280, 800)

    def _layout_widgets(self) -> None:
        self.telemetry_row = QWidget()
        self.telemetry_row.setMinimumHeight(MIN_TELEMETRY_HEIGHT)
        bottom = QHBoxLayout(self.telemetry_row)
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addWidget(self.status)
        bottom.addWidget(self.chart, 1)
        # A splitter, so that the user decides how much height the telemetry takes from the video.
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(self.telemetry_row)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setCollapsible(0, False)
        self.splitter.setSizes([10_000, TELEMETRY_HEIGHT])  # the video takes whatever is left
        self._lay_out(self.splitter, self.controls)

    def _add_shortcuts(self) -> None:
        playback, routing = self.controls.playback, self.controls.routing
        bindings = {
            "Space": playback.toggle_play_pause,
            "R": playback.toggle_record,
            "F": self.toggle_fullscreen,
            "Esc": self.leave_fullscreen,
            "+": lambda: routing.step_target_fps(+1),
            "=": lambda: routing.step_target_fps(+1),  # "+" without Shift on most layouts
            "-": lambda: routing.step_target_fps(-1),
        }
        self._bind_keys(bindings)

    def _panels(self) -> list[QWidget]:
        return [self.controls, self.telemetry_row]
