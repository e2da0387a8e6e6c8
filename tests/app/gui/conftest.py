"""GUI test fixtures: an offscreen Qt platform, small videos, and a running session factory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.media import make_video
from tests.support.servers import mjpeg_server  # noqa: F401

# Set before any QApplication exists (pytest-qt creates it lazily, and nothing above imports
# Qt): no window system is needed, and a developer's own display is never used.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

MODEL_LOAD_TIMEOUT_MS = 60_000  # the first load imports torch; the machine may be busy


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Short clips at 10 fps; "b" has another size, so that a source switch shows in the frames."""
    folder = tmp_path_factory.mktemp("videos")
    clips = {"a": (96, 64, 30), "b": (80, 48, 30), "short": (96, 64, 8)}
    paths = {}
    for name, (width, height, frames) in clips.items():
        paths[name] = folder / f"{name}.mp4"
        make_video(paths[name], frames=frames, fps=10, size=(width, height))
    return paths


@pytest.fixture
def start_session(qtbot, tiny_weights) -> Iterator[Callable]:
    """Opens the window with a session on the tiny model; by default waits for the first frame."""
    from app.gui.main_window import MainWindow
    from app.gui.model_loader import ModelChoice
    from app.gui.session import Session, SessionOptions

    windows = []

    def start(source: Path | str, weights: Path | None = None, wait_for_frame: bool = True, **options):
        window = MainWindow()
        qtbot.addWidget(window)
        model = ModelChoice(weights=str(weights or tiny_weights), backend="torch", threads=1)
        session = Session(window, SessionOptions(source=str(source), model=model, **options))
        windows.append(window)
        window.show()
        session.start()
        if wait_for_frame:
            qtbot.waitUntil(lambda: window.view.result is not None, timeout=MODEL_LOAD_TIMEOUT_MS)
        return window, session

    yield start
    for window in windows:
        window.close()  # stops the session's pipeline even when a test failed half-way
