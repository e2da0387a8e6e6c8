"""The telemetry panels on their own, fed made-up stats: values not known yet show as "–", the
source's state says what the source is, the exit-2 share is recent, and nothing runs off the panel."""

from __future__ import annotations

import pytest

from engine.runtime.capture import CaptureStats
from engine.runtime.monitor import CameraStats
from engine.runtime.pipeline import PipelineStats
from engine.runtime.shared_engine import EngineStats
from engine.runtime.sources import SourceKind

FILE_30FPS = CaptureStats(state="live", frames_read=3, fps=30.0, width=640, height=360)


def stats(capture: CaptureStats = FILE_30FPS, dropped: int = 0, recorded: int = 0, **engine) -> PipelineStats:
    return PipelineStats(capture, EngineStats(**engine), None, dropped, recorded)


@pytest.fixture
def panel(qtbot):
    """The panel as the main window sizes it."""
    from app.gui.main_window import STATUS_WIDTH
    from app.gui.telemetry import StatusPanel

    widget = StatusPanel()
    widget.setFixedWidth(STATUS_WIDTH)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_after_the_first_frame_nothing_unknown_reads_as_zero(panel):
    panel.set_source(SourceKind.FILE)
    panel.update_stats(stats(), 30.0, None)  # nothing processed yet
    assert panel.text("Processing") == "– / 30.0 fps"
    assert panel.text("Latency") == "–" and panel.text("Exit-2 share") == "–"
    first = stats(frames_processed=1, frames_second_exit=1, recent_latency_ms=11.0, recent_p95_latency_ms=11.0)
    panel.update_stats(first, 30.0, None)  # one frame: no rate yet
    assert panel.text("Processing") == "– / 30.0 fps"
    assert panel.text("Source") == "30.0 fps · 640×360"
    assert panel.text("Latency") == "11 ms (p95 11)"
    assert panel.text("State") == "playing file"
    panel.update_stats(stats(frames_processed=2, processing_fps=28.5), None, None)
    assert panel.text("Processing") == "28.5 fps"


@pytest.mark.parametrize("kind, expected", [
    (SourceKind.FILE, "playing file"),
    (SourceKind.IMAGES, "playing images"),
    (SourceKind.RTSP, "live stream"),
    (SourceKind.NETWORK, "live stream"),
    (SourceKind.CAMERA, "live camera"),
])
def test_the_state_says_what_the_source_is(panel, kind, expected):
    panel.set_source(kind)
    panel.update_stats(stats(frames_processed=5), None, None)
    assert panel.text("State") == expected


def test_counts_of_one_are_singular(panel):
    panel.update_stats(stats(dropped=1, recorded=1), None, "/tmp/clip.mp4")
    assert panel.text("Dropped") == "1 frame"
    assert panel.text("Recording") == "1 frame → clip.mp4"
    panel.update_stats(stats(dropped=2, recorded=0), None, "/tmp/clip.mp4")
    assert panel.text("Dropped") == "2 frames" and panel.text("Recording") == "0 frames → clip.mp4"


def test_long_values_stay_inside_the_panel(panel, qtbot):
    from app.gui.telemetry import ROWS

    panel.set_source(SourceKind.RTSP)
    waiting = CaptureStats(state="reconnecting", next_retry_in=7.6, last_error="rtsp://cam: stream stalled")
    panel.update_stats(stats(waiting, frames_processed=20, processing_fps=9.5), 30.0, None)
    qtbot.wait(10)
    state = panel.value_label("State")
    assert state.text() == "reconnecting in 8 s" and not state.is_elided()  # whole, at the panel's width
    assert "stream stalled" in state.toolTip()
    long_name = "/recordings/" + "a-very-long-recording-name-" * 4 + ".mp4"
    panel.update_stats(stats(frames_processed=20, dropped=123456789, recorded=123456), 30.0, long_name)
    qtbot.wait(10)
    recording = panel.value_label("Recording")
    assert recording.is_elided() and recording.shown_text().endswith("…")
    assert recording.toolTip() == recording.text()  # the whole text, one hover away
    inside = panel.contentsRect()
    for row in ROWS:
        assert panel.value_label(row).geometry().right() <= inside.right(), row


def test_the_exit2_share_is_over_the_recent_stream(panel):
    from app.gui.telemetry import RECENT_SECONDS

    panel.update_stats(stats(frames_processed=10, frames_second_exit=5), None, None)
    assert panel.text("Exit-2 share") == f"50% (last {RECENT_SECONDS:.0f} s)"
    assert panel.value_label("Exit-2 share").toolTip() == "50% of all 10 frames since the start"


def test_recent_counts_forget_what_left_the_window():
    from app.gui.telemetry import RecentCounts

    recent = RecentCounts(seconds=10.0)
    assert recent.share(1, 0) is None
    recent.add((10, 10), now=1.0)
    assert recent.share(1, 0) == 1.0  # the whole run so far: counted from zero
    recent.add((20, 10), now=5.0)
    assert recent.share(1, 0) == 0.5
    recent.add((30, 10), now=12.0)  # the window starts at 2 s: the frames counted at 1 s are older
    assert recent.grown() == (20, 0) and recent.share(1, 0) == 0.0
    recent.add((40, 20), now=16.0)  # the window starts at 6 s, the sample at 5 s is its base
    assert recent.grown() == (20, 10) and recent.share(1, 0) == 0.5
    recent.add((40, 20), now=40.0)  # nothing new (a pause): the share stays that of the last frames
    assert recent.share(1, 0) == 0.5
    recent.add((3, 1), now=41.0)  # counters went down: a new pipeline, counted afresh
    assert recent.grown() == (3, 1)


def test_a_source_without_a_declared_rate_is_timed(panel):
    from app.gui.telemetry import RecentCounts

    rates = RecentCounts(seconds=5.0)
    rates.add((0,), now=0.0)
    rates.add((10,), now=0.5)
    assert rates.rate() is None  # too short to tell
    rates.add((30,), now=1.5)
    assert rates.rate() == pytest.approx(20.0)
    panel.set_source(SourceKind.NETWORK)
    panel.update_stats(stats(CaptureStats(state="live", frames_read=5, width=320, height=240)), None, None)
    assert panel.text("Source") == "rate unknown · 320×240"  # until a second of frames is in


def test_camera_panel_rates_and_recent_shares(qtbot):
    from app.gui.camera_grid import camera_status
    from app.gui.camera_telemetry import CameraTelemetry

    telemetry = CameraTelemetry(["gate", "yard"])
    qtbot.addWidget(telemetry)
    capture = CaptureStats(state="live", fps=30.0)

    def camera(name: str, **lane) -> CameraStats:
        return CameraStats(name, capture, EngineStats(**lane), 0, 0, None)

    first = {"gate": camera("gate", frames_processed=1, frames_second_exit=1), "yard": camera("yard")}
    telemetry.update_stats(first, 20.0)
    assert telemetry.text("Processing") == "– / 20.0 fps"
    assert telemetry.text("Exit-2 share") == "100% (last 10 s)"
    assert telemetry.text("gate") == "– fps · 100%" and telemetry.text("yard") == "–"
    assert telemetry.text("Cameras up") == "2 / 2"
    assert camera_status(first["gate"], SourceKind.FILE).text == "playing"
    running = camera("gate", frames_processed=40, processing_fps=9.8)
    assert camera_status(running, SourceKind.FILE).text == "playing · 9.8 fps"
    assert camera_status(running, SourceKind.RTSP).text == "live · 9.8 fps"
