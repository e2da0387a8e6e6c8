"""Routing controls: the mode, the target-FPS slider, the threshold / exit-2 share slider."""

from __future__ import annotations

import logging
import math

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QSlider, QWidget

logger = logging.getLogger(__name__)

#: (label, RoutingMode kind), in the order the combo box lists them.
MODES = (
    ("Hold target FPS", "target_fps"),
    ("Fixed threshold", "threshold"),
    ("Fixed exit-2 share", "second_fraction"),
    ("Force exit 1 (fast)", "first"),
    ("Force exit 2 (accurate)", "second"),
)
_FPS_STEPS = 10  # slider units per frame per second
_VALUE_STEPS = 100  # slider units per 1.0 of threshold or share


def fps_range(exit1_ms: float, exit2_ms: float, source_fps: float | None = None) -> tuple[float, float]:
    """The target-FPS values worth offering, from the measured cost of each exit.

    Every frame at exit 2 gives the lowest rate (``1000 / exit2_ms``), every frame at exit 1 the
    highest; a margin on both sides lets the user see the controller saturate. A source cannot
    be processed faster than it delivers frames, so its rate caps the range when known.
    """
    exit1_ms, exit2_ms = max(exit1_ms, 0.1), max(exit2_ms, exit1_ms, 0.1)
    high = 1.2 * 1000.0 / exit1_ms
    if source_fps and source_fps > 0:
        high = min(high, source_fps)
    low = min(0.8 * 1000.0 / exit2_ms, 0.5 * high)
    low = max(0.5, round(low, 1))
    return low, max(round(high, 1), low + 1.0)


class RoutingControls(QGroupBox):
    """Emits the user's routing intent; the session decides what the pipeline does with it.

    Signals:
        modeChanged(kind, value): a routing mode was picked or its threshold / share moved;
            ``value`` is NaN for the forced exits.
        targetFpsChanged(fps): the target-FPS slider moved (in "hold target FPS" mode).
    """

    modeChanged = pyqtSignal(str, float)
    targetFpsChanged = pyqtSignal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Routing", parent)
        self._values = {"threshold": 0.5, "second_fraction": 0.5}
        self._measured = False  # whether the FPS range comes from measured exit costs yet
        self.mode_box = QComboBox()
        for label, kind in MODES:
            self.mode_box.addItem(label, kind)
        self.fps_slider = QSlider(Qt.Orientation.Horizontal)
        self.fps_label, self.fps_range_label = QLabel(), QLabel()
        self.fps_range_label.setObjectName("statusName")
        self.fps_range_label.setWordWrap(True)
        self.value_slider = QSlider(Qt.Orientation.Horizontal)
        self.value_slider.setRange(0, _VALUE_STEPS)
        self.value_name, self.value_label = QLabel("Threshold"), QLabel()
        self._layout_widgets()
        self.set_fps_range(1.0, 30.0)
        self.set_target_fps(10.0)
        self.mode_box.currentIndexChanged.connect(self._on_mode_picked)
        self.fps_slider.valueChanged.connect(self._on_fps_moved)
        self.value_slider.valueChanged.connect(self._on_value_moved)
        self._sync_visibility()

    def _layout_widgets(self) -> None:
        grid = QGridLayout(self)
        grid.addWidget(QLabel("Mode"), 0, 0)
        grid.addWidget(self.mode_box, 0, 1, 1, 2)
        self.fps_name = QLabel("Target")
        grid.addWidget(self.fps_name, 1, 0)
        grid.addWidget(self.fps_slider, 1, 1)
        grid.addWidget(self.fps_label, 1, 2)
        grid.addWidget(self.fps_range_label, 2, 1, 1, 2)
        grid.addWidget(self.value_name, 3, 0)
        grid.addWidget(self.value_slider, 3, 1)
        grid.addWidget(self.value_label, 3, 2)
        self.fps_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("000.0 fps") + 4)
        grid.setColumnStretch(1, 1)

    @property
    def kind(self) -> str:
        """The routing mode kind currently selected."""
        return str(self.mode_box.currentData())

    @property
    def target_fps(self) -> float:
        return self.fps_slider.value() / _FPS_STEPS

    def value(self) -> float:
        """The value that goes with the selected mode (NaN for forced exits)."""
        if self.kind == "target_fps":
            return self.target_fps
        return self._values.get(self.kind, math.nan)

    def set_mode(self, kind: str, value: float | None = None) -> None:
        """Show ``kind`` as the selected mode (and its value) without emitting."""
        index = self.mode_box.findData(kind)
        if index < 0:
            raise ValueError(f"unknown routing mode {kind!r}")
        if kind == "target_fps" and value is not None:
            self.set_target_fps(value)
        elif kind in self._values and value is not None:
            self._values[kind] = float(value)
        self.mode_box.blockSignals(True)
        self.mode_box.setCurrentIndex(index)
        self.mode_box.blockSignals(False)
        self._sync_visibility()

    def set_target_fps(self, fps: float) -> None:
        """Move the slider to ``fps`` without emitting; the range grows to include it."""
        low, high = self.fps_slider.minimum() / _FPS_STEPS, self.fps_slider.maximum() / _FPS_STEPS
        if not low <= fps <= high:
            self.set_fps_range(min(low, fps), max(high, fps))
        self.fps_slider.blockSignals(True)
        self.fps_slider.setValue(round(fps * _FPS_STEPS))
        self.fps_slider.blockSignals(False)
        self.fps_label.setText(f"{self.target_fps:.1f} fps")

    def set_fps_range(self, low: float, high: float, measured: bool = False) -> None:
        """Limits of the target-FPS slider; ``measured`` when they come from the exit costs."""
        current = self.fps_slider.value()
        self.fps_slider.blockSignals(True)
        self.fps_slider.setRange(round(low * _FPS_STEPS), round(high * _FPS_STEPS))
        self.fps_slider.setPageStep(_FPS_STEPS)
        self.fps_slider.setValue(current)
        self.fps_slider.blockSignals(False)
        self._measured = measured or self._measured
        detail = "from the measured exit costs" if self._measured else "until the exit costs are measured"
        self.fps_range_label.setText(f"{low:.1f} – {high:.1f} fps, {detail}")
        self.fps_label.setText(f"{self.target_fps:.1f} fps")

    def update_costs(self, exit1_ms: float, exit2_ms: float, source_fps: float | None = None) -> None:
        """Re-derive the slider range from exit costs, unless the user is dragging it."""
        if self.fps_slider.isSliderDown() or exit1_ms <= 0:
            return
        low, high = fps_range(exit1_ms, exit2_ms, source_fps)
        current = self.target_fps
        low, high = min(low, current), max(high, current)
        old_low, old_high = self.fps_slider.minimum() / _FPS_STEPS, self.fps_slider.maximum() / _FPS_STEPS
        # Small drifts of the measured costs would make the slider twitch under the pointer.
        drifted = abs(low - old_low) > 0.15 * old_low or abs(high - old_high) > 0.15 * old_high
        if drifted or not self._measured:
            self.set_fps_range(low, high, measured=True)

    def step_target_fps(self, direction: int) -> None:
        """Nudge the target by one frame per second (the +/- keys) and emit the change."""
        if self.kind != "target_fps":
            return  # the slider is hidden: a change nobody can see would surprise later
        self.fps_slider.setValue(self.fps_slider.value() + direction * _FPS_STEPS)

    def _on_mode_picked(self) -> None:
        self._sync_visibility()
        self.modeChanged.emit(self.kind, self.value())

    def _on_fps_moved(self, position: int) -> None:
        self.fps_label.setText(f"{position / _FPS_STEPS:.1f} fps")
        self.targetFpsChanged.emit(position / _FPS_STEPS)

    def _on_value_moved(self, position: int) -> None:
        if self.kind not in self._values:
            return
        self._values[self.kind] = position / _VALUE_STEPS
        self.value_label.setText(f"{position / _VALUE_STEPS:.2f}")
        self.modeChanged.emit(self.kind, self._values[self.kind])

    def _sync_visibility(self) -> None:
        kind = self.kind
        for widget in (self.fps_name, self.fps_slider, self.fps_label, self.fps_range_label):
            widget.setVisible(kind == "target_fps")
        has_value = kind in self._values
        for widget in (self.value_name, self.value_slider, self.value_label):
            widget.setVisible(has_value)
        if has_value:
            self.value_name.setText("Threshold" if kind == "threshold" else "Exit-2 share")
            self.value_slider.setToolTip("frames whose router score is >= the threshold leave at exit 1"
                                         if kind == "threshold" else "share of frames sent to exit 2")
            self.value_slider.blockSignals(True)
            self.value_slider.setValue(round(self._values[kind] * _VALUE_STEPS))
            self.value_slider.blockSignals(False)
            self.value_label.setText(f"{self._values[kind]:.2f}")
