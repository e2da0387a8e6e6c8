"""Building and running the Qt application: QApplication, window, session, screenshot mode."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QObject, QTimer
from PyQt6.QtWidgets import QApplication

from app.gui.main_window import MainWindow
from app.gui.session import Session, SessionOptions
from app.gui.theme import apply_theme

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScreenshotRequest:
    """Save the whole window to ``path`` after ``frames`` processed frames, then quit."""

    path: Path
    frames: int


class ScreenshotOnFrames(QObject):
    """Grabs the window once the session has processed enough frames, then ends the event loop.

    The exit code is 0 when the picture was saved after enough frames. An error, or a stream
    that ends first, is captured too (it shows what went wrong) but ends with exit code 1.
    """

    def __init__(self, window: MainWindow, session: Session, request: ScreenshotRequest) -> None:
        super().__init__(window)
        self.window = window
        self.request = request
        self.saved = False
        self.exit_code = 1
        self._pending = False
        session.framesProcessed.connect(self._on_frames)
        session.errorShown.connect(lambda _message: self._schedule(success=False))
        session.streamFinished.connect(lambda _reason: self._schedule(success=False))

    def _on_frames(self, total: int) -> None:
        if total >= self.request.frames:
            self._schedule(success=True)

    def _schedule(self, success: bool) -> None:
        if self._pending:
            return
        self._pending = True
        # Let the last frame or message be painted before grabbing.
        QTimer.singleShot(100, lambda: self._save(success))

    def _save(self, success: bool) -> None:
        self.request.path.parent.mkdir(parents=True, exist_ok=True)
        self.saved = self.window.grab().save(str(self.request.path), "PNG")
        if not self.saved:
            logger.error("could not write the screenshot to %s", self.request.path)
        self.exit_code = 0 if self.saved and success else 1
        QApplication.instance().exit(self.exit_code)


def run_gui(options: SessionOptions, screenshot: ScreenshotRequest | None = None) -> int:
    """Open the window and run until it is closed; returns the process exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("DynaStream")
    apply_theme(app)
    window = MainWindow()
    session = Session(window, options)
    hook = ScreenshotOnFrames(window, session, screenshot) if screenshot is not None else None
    window.show()
    session.start()
    with _close_on_interrupt(window):
        code = app.exec()
    window.close()  # a screenshot exit leaves the window open; closing stops the session
    session.shutdown()
    return hook.exit_code if hook is not None else code


@contextlib.contextmanager
def _close_on_interrupt(window: MainWindow) -> Iterator[None]:
    """Ctrl-C in the terminal closes the window cleanly (recording flushed) instead of being lost.

    Python runs signal handlers only between bytecodes, and Qt's event loop is C++: a timer
    that wakes the interpreter a few times a second gives the handler its chance to run.
    """
    timer = QTimer()
    timer.setInterval(200)
    timer.timeout.connect(lambda: None)
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    timer.start()
    try:
        yield
    finally:
        timer.stop()
        signal.signal(signal.SIGINT, previous)
