"""The window driving a real pipeline on the tiny model: controls reach the engine, the picture
follows the engine, sources switch, errors show in the window, and closing stops every thread."""

from __future__ import annotations

import threading
import time

from engine.runtime.routing import RoutingMode

WAIT_MS = 20_000


def pick_mode(window, kind: str) -> None:
    box = window.controls.routing.mode_box
    box.setCurrentIndex(box.findData(kind))


def controller_target(session) -> float | None:
    """The engine's controller target; None until the engine has run a frame under it."""
    controller = session.pipeline.stats.engine.controller
    return None if controller is None else controller.target_fps


def test_target_slider_moves_the_controller_target(start_session, videos, qtbot):
    window, session = start_session(videos["a"], target_fps=8.0)
    slider = window.controls.routing.fps_slider
    slider.setValue(slider.value() - 30)  # 3 fps lower, as a drag would
    target = window.controls.routing.target_fps
    assert target == 5.0
    qtbot.waitUntil(lambda: session.pipeline.engine.allocator.mode == RoutingMode("target_fps", 5.0), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: controller_target(session) == 5.0, timeout=WAIT_MS)


def test_badge_follows_the_engine_decisions(start_session, videos, qtbot):
    window, session = start_session(videos["a"])
    for kind, exit_taken in (("first", 1), ("second", 2)):
        pick_mode(window, kind)
        qtbot.waitUntil(lambda exit_taken=exit_taken: window.view.result.detections.exit == exit_taken,
                        timeout=WAIT_MS)
        assert window.view.badge_text()[0] == f"EXIT {exit_taken}"
        assert session.pipeline.engine.allocator.mode == RoutingMode(kind)


def test_switch_source_and_mode_while_running(start_session, videos, qtbot):
    window, session = start_session(videos["a"])
    first = session.pipeline
    window.controls.source.sourceRequested.emit(str(videos["b"]))
    qtbot.waitUntil(lambda: window.view.result is not None and window.view.result.frame.size == (80, 48),
                    timeout=WAIT_MS)
    assert session.pipeline is not first and first.join(0)  # the old pipeline's workers ended
    qtbot.waitUntil(lambda: window.status.text("State") == "playing file", timeout=WAIT_MS)  # not a "stream"
    pick_mode(window, "threshold")
    window.controls.routing.value_slider.setValue(20)
    qtbot.waitUntil(lambda: session.pipeline.engine.allocator.mode == RoutingMode("threshold", 0.2), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.view.result.detections.threshold == 0.2, timeout=WAIT_MS)


def test_video_files_loop_without_a_restart(start_session, videos, qtbot):
    _, session = start_session(videos["short"])  # 8 frames: under a second per pass
    first = session.pipeline
    qtbot.waitUntil(lambda: session.pipeline.stats.capture.loops >= 1, timeout=WAIT_MS)
    assert session.pipeline is first  # the controller and the recording carry on


def test_record_toggle_and_pause_act_on_the_running_pipeline(start_session, videos, qtbot, tmp_path):
    window, session = start_session(videos["a"])
    pipeline, playback = session.pipeline, window.controls.playback
    recording = tmp_path / "clip.mkv"
    playback.record_path.setText(str(recording))
    playback.toggle_record()
    qtbot.waitUntil(lambda: pipeline.stats.frames_recorded >= 3, timeout=WAIT_MS)
    playback.toggle_record()
    assert session.pipeline is pipeline and not pipeline.recording
    assert pipeline.writer.stats.state == "closed" and recording.stat().st_size > 0
    assert "clip.mkv" in window.notice_text()
    playback.playPauseToggled.emit(True)
    qtbot.waitUntil(lambda: pipeline.stats.capture.state == "paused", timeout=WAIT_MS)
    held = pipeline.stats.capture.frames_read
    qtbot.wait(400)  # four frame intervals of the clip
    assert pipeline.stats.capture.frames_read <= held + 1
    playback.playPauseToggled.emit(False)
    qtbot.waitUntil(lambda: pipeline.stats.capture.frames_read > held + 2, timeout=WAIT_MS)
    assert session.pipeline is pipeline


def test_closing_stops_every_thread(start_session, videos, qtbot, tmp_path):
    # Libraries imported by other tests may keep pool threads of their own; only the session's count.
    before = set(threading.enumerate())
    window, session = start_session(videos["a"])
    recording = tmp_path / "rec.mp4"
    window.controls.playback.record_path.setText(str(recording))
    window.controls.playback.toggle_record()
    qtbot.waitUntil(lambda: session.pipeline.stats.frames_recorded >= 3, timeout=WAIT_MS)
    pipeline = session.pipeline
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 2.0
    assert session.pipeline is None and pipeline.join(0)
    assert not session.bridge.running
    assert pipeline.writer.stats.state == "closed" and recording.stat().st_size > 0  # flushed
    leftovers = [t for t in threading.enumerate()
                 if not t.daemon and t is not threading.main_thread() and t not in before]
    assert leftovers == []


def test_unopenable_sources_show_an_error_in_the_window(start_session, videos, qtbot, tmp_path):
    window, session = start_session(videos["a"])
    window.controls.source.sourceRequested.emit(str(tmp_path / "missing.mp4"))
    assert "missing.mp4" in window.error_text()
    assert session.pipeline is not None  # the current source keeps playing
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    window.controls.source.sourceRequested.emit(str(broken))
    qtbot.waitUntil(lambda: "broken.mp4" in window.error_text(), timeout=WAIT_MS)
    assert window.view.state is not None and window.view.state.kind == "error"
    assert session.pipeline is None


def test_a_model_that_cannot_load_shows_an_error(start_session, videos, qtbot, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    window, session = start_session(videos["a"], weights=bad, wait_for_frame=False)
    qtbot.waitUntil(lambda: window.error_text().startswith("Cannot load model"), timeout=WAIT_MS)
    assert window.view.state is not None and window.view.state.title == "No model loaded"
    assert session.pipeline is None


def test_a_dropped_stream_is_shown_offline(start_session, mjpeg_server, qtbot):
    window, _ = start_session(mjpeg_server)  # each connection ends after 20 frames; capture reconnects
    shown = []
    set_state = window.view.set_state
    window.view.set_state = lambda state: (shown.append(state), set_state(state))
    qtbot.waitUntil(lambda: any(state and state.title == "Stream offline" for state in shown), timeout=WAIT_MS)
    offline = next(state for state in shown if state and state.title == "Stream offline")
    assert offline.detail.startswith("Reconnecting in") and offline.kind == "warning"


def test_an_automatic_target_never_exceeds_the_source_rate(start_session, qtbot, tmp_path):
    from tests.support.media import make_video

    clip = tmp_path / "slow.mp4"
    make_video(clip, frames=40, fps=5, size=(96, 64))
    window, session = start_session(clip)  # no --target-fps: the app picks 10 fps for an uncalibrated model
    qtbot.waitUntil(lambda: session.target_fps == 5.0, timeout=WAIT_MS)
    assert window.controls.routing.target_fps == 5.0
    qtbot.waitUntil(lambda: controller_target(session) == 5.0, timeout=WAIT_MS)


def test_the_panel_never_shows_an_automatic_target_above_the_source_rate(qtbot):
    """The target a calibrated model suggests (45.2 fps here) meets a 30 fps file: the first
    stats that name the source's rate bring the target and the slider's range down to it
    before the panel shows either. No model runs: the stats come in through the bridge's signal."""
    from types import SimpleNamespace

    from app.gui.main_window import MainWindow
    from app.gui.model_loader import ModelChoice
    from app.gui.session import Session, SessionOptions
    from engine.runtime.capture import CaptureStats
    from engine.runtime.pipeline import PipelineStats
    from engine.runtime.shared_engine import EngineStats

    window = MainWindow()
    qtbot.addWidget(window)
    session = Session(window, SessionOptions(source="clip.mp4", model=ModelChoice()))
    session.model = SimpleNamespace(calibration=SimpleNamespace(exit1_ms=12.0, exit2_ms=40.0))
    session.target_fps = 45.2
    window.controls.routing.set_target_fps(45.2)
    window.controls.routing.update_costs(12.0, 40.0)
    first = PipelineStats(CaptureStats(state="live", fps=30.0, width=640, height=360),
                          EngineStats(frames_processed=1), None, 0, 0)
    session.bridge.statsReady.emit(first)
    assert window.status.text("Processing") == "– / 30.0 fps"
    assert session.target_fps == 30.0 and window.controls.routing.target_fps == 30.0
    assert window.controls.routing.fps_slider.maximum() == 300  # the range stops at the source's rate
