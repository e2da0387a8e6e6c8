"""The routing group on its own: its range label names the slider's own stops, and its height is
the same in every mode."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("low, high", [(14.65, 29.97), (14.7, 30.0), (0.55, 72.85), (2.04, 15.05), (9.95, 10.95)])
def test_the_range_label_names_the_values_at_the_slider_stops(qtbot, low, high):
    from app.gui.routing_controls import RoutingControls

    controls = RoutingControls()
    qtbot.addWidget(controls)
    controls.set_fps_range(low, high)
    slider = controls.fps_slider
    stops = []
    for end in (slider.minimum(), slider.maximum()):
        slider.setValue(end)
        stops.append(controls.fps_label.text().removesuffix(" fps"))
    assert controls.fps_range_label.text().startswith(f"{stops[0]} – {stops[1]} fps")


@pytest.mark.parametrize("exit1_ms, exit2_ms, source_fps", [(12.0, 40.0, 29.97), (33.9, 68.1, None), (5.0, 9.0, 14.7)])
def test_measured_ranges_name_the_slider_stops_too(qtbot, exit1_ms, exit2_ms, source_fps):
    from app.gui.routing_controls import RoutingControls

    controls = RoutingControls()
    qtbot.addWidget(controls)
    controls.set_target_fps(12.0)
    controls.update_costs(exit1_ms, exit2_ms, source_fps)
    slider = controls.fps_slider
    low, high = (f"{end / 10:.1f}" for end in (slider.minimum(), slider.maximum()))
    assert controls.fps_range_label.text().startswith(f"{low} – {high} fps, from the measured exit costs")
    if source_fps:
        assert slider.maximum() / 10 <= round(source_fps, 1)  # never a target the source cannot feed


def test_the_group_keeps_its_height_in_every_mode(qtbot):
    """Switching modes must not move the panels below the routing group."""
    from app.gui.controls import ControlPanel
    from app.gui.routing_controls import MODES

    panel = ControlPanel()
    qtbot.addWidget(panel)
    panel.resize(panel.width(), 900)
    panel.show()
    routing = panel.routing
    routing.update_costs(12.0, 40.0, 29.97)  # the range label's longest wording
    heights, below = set(), set()
    for _, kind in MODES:
        routing.mode_box.setCurrentIndex(routing.mode_box.findData(kind))
        qtbot.wait(10)
        heights.add(routing.height())
        below.add(panel.source.y())
        for hint in (routing.fps_range_label, routing.value_hint, routing.forced_hint):
            if hint.isVisible():  # the explanation fits its lines, nothing cut off
                assert hint.heightForWidth(hint.width()) <= hint.height(), (kind, hint.text())
    assert len(heights) == 1 and len(below) == 1
