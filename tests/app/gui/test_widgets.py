"""The widgets on their own (no model, no pipeline): intent signals, setters, drawing helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.detections import Detections
from engine.runtime.capture import CaptureStats


def test_fps_range_spans_the_exit_costs_and_respects_the_source_rate():
    from app.gui.routing_controls import fps_range

    low, high = fps_range(exit1_ms=50.0, exit2_ms=200.0)
    assert low <= 1000 / 200 < 1000 / 50 <= high
    _, capped = fps_range(exit1_ms=2.0, exit2_ms=5.0, source_fps=15.0)
    assert capped == 15.0


def test_target_slider_emits_intent_and_setters_stay_silent(qtbot):
    from app.gui.routing_controls import RoutingControls

    controls = RoutingControls()
    qtbot.addWidget(controls)
    controls.set_fps_range(2.0, 30.0)
    with qtbot.assertNotEmitted(controls.targetFpsChanged):
        controls.set_target_fps(12.0)
    with qtbot.waitSignal(controls.targetFpsChanged) as signal:
        controls.fps_slider.setValue(75)
    assert signal.args == [7.5]
    controls.step_target_fps(+1)
    assert controls.target_fps == 8.5


def test_mode_picker_emits_kind_and_value(qtbot):
    from app.gui.routing_controls import RoutingControls

    controls = RoutingControls()
    qtbot.addWidget(controls)
    with qtbot.waitSignal(controls.modeChanged) as signal:
        controls.mode_box.setCurrentIndex(controls.mode_box.findData("threshold"))
    assert signal.args == ["threshold", 0.5]
    with qtbot.waitSignal(controls.modeChanged) as signal:
        controls.value_slider.setValue(30)
    assert signal.args == ["threshold", 0.3]
    with qtbot.waitSignal(controls.modeChanged) as signal:
        controls.mode_box.setCurrentIndex(controls.mode_box.findData("second"))
    assert signal.args[0] == "second" and math.isnan(signal.args[1])


@pytest.mark.parametrize("width", [5, 6, 7, 8])  # widths whose rows are not a multiple of 4 bytes
def test_qimage_conversion_keeps_rows_aligned(qapp, width):
    from app.gui.images import rgb_to_qimage

    frame = np.zeros((3, width, 3), np.uint8)
    frame[:, -1] = (255, 0, 0)  # last column red, on every row
    converted = rgb_to_qimage(frame)
    for row in range(3):
        assert converted.image.pixelColor(width - 1, row).getRgb()[:3] == (255, 0, 0)
        assert converted.image.pixelColor(0, row).getRgb()[:3] == (0, 0, 0)


def test_badge_tells_exit_routing_and_latency():
    from app.gui.overlay import badge_lines

    det = Detections.empty(("a",), exit=2, router_score=0.31)
    det = Detections(det.boxes, det.scores, det.class_ids, det.class_names, 2, 0.31, threshold=0.5)
    assert badge_lines(det, 42.4) == ["EXIT 2", "router score 0.31 < 0.50", "latency 42 ms"]
    forced = Detections.empty(("a",), exit=1, router_score=0.9)
    assert badge_lines(forced, None) == ["EXIT 1", "router score 0.90 (exit forced)"]
    close = Detections(det.boxes, det.scores, det.class_ids, det.class_names, 1, 0.5004, threshold=0.5)
    assert badge_lines(close, None)[1] == "router score 0.5004 >= 0.5000"


def test_recordings_and_the_window_share_one_badge_text():
    from app.gui import overlay
    from engine import render

    assert overlay.badge_lines is render.badge_lines


def test_offline_states_are_explicit():
    from app.gui.telemetry import describe_capture, offline_state

    waiting = CaptureStats(state="reconnecting", next_retry_in=3.6, last_error="rtsp://cam: stream stalled")
    state = offline_state(waiting)
    assert state is not None and state.title == "Stream offline"
    assert "Reconnecting in 4 s…" in state.detail and "stream stalled" in state.detail
    assert describe_capture(waiting)[0] == "reconnecting in 4 s"
    assert offline_state(CaptureStats(state="live")) is None


def test_class_filter_keeps_at_least_one_class(qtbot):
    from PyQt6.QtCore import Qt

    from app.gui.class_filter import ClassFilter

    widget = ClassFilter()
    qtbot.addWidget(widget)
    widget.set_classes(["circle", "star"])
    assert widget.selected() == ()
    with qtbot.waitSignal(widget.classFilterChanged) as signal:
        widget.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert signal.args == [("star",)]
    widget.list.item(1).setCheckState(Qt.CheckState.Unchecked)  # the last one stays checked
    assert widget.selected() == ("star",)


def test_keyboard_shortcuts_reach_the_controls(qtbot):
    from PyQt6.QtCore import Qt
    from PyQt6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    # Window shortcuts fire only in the active window.
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    playback, routing = window.controls.playback, window.controls.routing
    with qtbot.waitSignal(playback.playPauseToggled) as signal:
        qtbot.keyClick(window, Qt.Key.Key_Space)
    assert signal.args == [True]
    with qtbot.waitSignal(routing.targetFpsChanged) as signal:
        qtbot.keyClick(window, Qt.Key.Key_Plus)
    assert signal.args == [11.0]
    with qtbot.waitSignal(playback.recordToggled) as signal:
        qtbot.keyClick(window, Qt.Key.Key_R)
    assert signal.args[0] is True and signal.args[1].endswith(".mp4")
    qtbot.keyClick(window, Qt.Key.Key_F)
    assert window.isFullScreen() and window.controls.isHidden()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.isFullScreen() and not window.controls.isHidden()


def test_badge_shows_enough_digits_for_close_calls():
    from app.gui.overlay import badge_lines

    det = Detections.empty(("a",))
    det = Detections(det.boxes, det.scores, det.class_ids, det.class_names, 2, 0.50312, threshold=0.50347)
    assert badge_lines(det, None)[1] == "router score 0.5031 < 0.5035"


def test_labels_keep_clear_of_the_badge(qapp):
    from PyQt6.QtCore import QRectF

    from app.gui.overlay import label_rect

    bounds, badge = QRectF(0, 0, 640, 360), QRectF(8, 8, 300, 24)
    free = label_rect(60, 14, QRectF(400, 100, 50, 50), bounds, badge)
    assert free.bottom() == 100 and free.left() == 399  # the usual place: just above the box
    under_badge = label_rect(60, 14, QRectF(100, 40, 50, 50), bounds, badge)
    assert not under_badge.intersects(badge) and under_badge.top() == 40  # inside the box top
    covered_top = label_rect(60, 14, QRectF(100, 10, 50, 50), bounds, badge)
    assert not covered_top.intersects(badge) and covered_top.top() == 60  # below the box
    at_edge = label_rect(60, 14, QRectF(600, 0, 40, 40), bounds)
    assert bounds.contains(at_edge) and at_edge.top() == 0
