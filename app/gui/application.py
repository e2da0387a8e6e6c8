"""Building and running the Qt application: QApplication, window, session, screenshot mode."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QCoreApplication, QEvent, QObject, QTimer
from PyQt6.QtWidgets import QApplication, QMainWindow

from app.gui.camera_window import CameraWindow
from app.gui.main_window import MainWindow
from app.gui.multi_session import CameraOptions, MultiSession
from app.gui.session import Session, SessionOptions
from app.gui.theme import apply_theme

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuitRequest:
    """Quit after ``frames`` processed frames, saving the whole window to ``screenshot`` if given."""

    frames: int
    screenshot: Path | None = None


class QuitOnFrames(QObject):
    """Ends the event loop once the session has processed enough frames (grabbing the window first).

    The exit code is 0 after enough frames (and a saved picture, when one was asked for). An
    error, or a stream that ends first, ends the loop too (and is captured, to show what went
    wrong) with exit code 1.
    """

    def __init__(self, window: QMainWindow, session: Session | MultiSession, request: QuitRequest) -> None:
        super().__init__(window)
        self.window = window
        self.request = request
        self.saved = False
        self.exit_code = 1
        self.error: str | None = None  # why the script did not get its frames, for stderr
        self._pending = False
        self._frames = 0
        session.framesProcessed.connect(self._on_frames)
        session.errorShown.connect(self._on_error)
        session.streamFinished.connect(self._on_finished)

    def _on_error(self, message: str) -> None:
        self.error = self.error or message
        self._schedule(success=False)

    def _on_finished(self, reason: str) -> None:
        self.error = self.error or (f"the stream ended ({reason}) after {self._frames} of "
                                    f"{self.request.frames} frames")
        self._schedule(success=False)

    def _on_frames(self, total: int) -> None:
        self._frames = total
        if total >= self.request.frames:
            self._schedule(success=True)

    def _schedule(self, success: bool) -> None:
        if self._pending:
            return
        self._pending = True
        # Let the last frame or message be painted before grabbing.
        QTimer.singleShot(100, lambda: self._save(success))

    def _save(self, success: bool) -> None:
        path = self.request.screenshot
        self.saved = path is None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.saved = self.window.grab().save(str(path), "PNG")
            if not self.saved:
                logger.error("could not write the screenshot to %s", path)
        self.exit_code = 0 if self.saved and success else 1
        QApplication.instance().exit(self.exit_code)


def run_gui(options: SessionOptions, quit_request: QuitRequest | None = None, summary: bool = False) -> int:
    """Open the window and run until it is closed; returns the process exit code.

    With ``summary``, one JSON line describing the run (the ``run`` command's figures) goes to
    stdout at the end, so scripts can compare the window against a headless run.
    """
    app = _application()
    window = MainWindow()
    return _run(app, window, Session(window, options), quit_request, summary)


def run_camera_gui(options: CameraOptions, quit_request: QuitRequest | None = None, summary: bool = False) -> int:
    """The camera grid of a ``cameras.yaml``, until the window is closed; returns the exit code.

    ``quit_request`` counts the frames processed over all cameras; ``summary`` prints the
    ``monitor`` command's per-camera figures.
    """
    app = _application()
    window = CameraWindow(options.names)
    return _run(app, window, MultiSession(window, options), quit_request, summary)


def _application() -> QApplication:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("DynaStream")
    apply_theme(app)
    return app


def _run(app: QApplication, window: QMainWindow, session: Session | MultiSession, quit_request: QuitRequest | None,
         summary: bool) -> int:
    hook = QuitOnFrames(window, session, quit_request) if quit_request is not None else None
    window.show()
    session.start()
    with _close_on_interrupt(window):
        code = app.exec()
    if summary:
        print(json.dumps(session.summary()), flush=True)
    window.close()  # a screenshot exit leaves the window open; closing stops the session
    session.shutdown()
    if hook is not None and hook.exit_code and hook.error:
        print(f"error: {hook.error}", file=sys.stderr)
    # Widgets go before the application, in Qt's own order: left to Python's exit, the
    # QApplication could be destroyed while the window still exists (a crash at exit).
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return hook.exit_code if hook is not None else code


@contextlib.contextmanager
def _close_on_interrupt(window: QMainWindow) -> Iterator[None]:
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
