"""Routing controls: the mode, the target-FPS slider, the threshold / exit-2 share slider.

Each mode's settings sit on a page of one stack, as tall as the tallest page, so that the
group keeps its height whichever mode is picked and the panels below it never move.
"""

from __future__ import annotations

import logging
import math

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QSlider, QStackedWidget, QWidget

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
_HINT_LINES = 2  # every page's explanation gets this many lines, whatever its text
#: The explanation under each mode's settings.
_HINTS = {
    "threshold": "frames scoring at least this leave at exit 1",
    "second_fraction": "this share of frames, the hardest by router score, take exit 2",
    "first": "every frame leaves at exit 1: fastest",
    "second": "every frame runs both detectors: most accurate",
}
_PAGES = {"target_fps": 0, "threshold": 1, "second_fraction": 1, "first": 2, "second": 2}


def _fps_text(units: int) -> str:
    """A slider position as the rate it stands for; the range label and the value both use it."""
    return f"{units / _FPS_STEPS:.1f}"


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
        self.fps_name, self.fps_slider = QLabel("Target"), QSlider(Qt.Orientation.Horizontal)
        self.fps_label, self.fps_range_label = QLabel(), self._hint_label()
        self.value_slider = QSlider(Qt.Orientation.Horizontal)
        self.value_slider.setRange(0, _VALUE_STEPS)
        self.value_name, self.value_label, self.value_hint = QLabel("Threshold"), QLabel(), self._hint_label()
        self.forced_hint = self._hint_label()
        self.pages = QStackedWidget()
        self._layout_widgets()
        self.set_fps_range(1.0, 30.0)
        self.set_target_fps(10.0)
        self.mode_box.currentIndexChanged.connect(self._on_mode_picked)
        self.fps_slider.valueChanged.connect(self._on_fps_moved)
        self.value_slider.valueChanged.connect(self._on_value_moved)
        self._sync_page()

    def _hint_label(self) -> QLabel:
        label = QLabel()
        label.setObjectName("statusName")
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        # A fixed height: a text that wraps onto another line must not change the group's height.
        label.setFixedHeight(_HINT_LINES * label.fontMetrics().lineSpacing() + 2)
        return label

    def _layout_widgets(self) -> None:
        mode_name = QLabel("Mode")
        # Equal name and value columns on every page, so the sliders line up with the mode box.
        name_width = max(self.fontMetrics().horizontalAdvance(text) for text in ("Mode", "Target", "Exit-2 share"))
        for name in (mode_name, self.fps_name, self.value_name):
            name.setMinimumWidth(name_width)
        self.fps_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("000.0 fps") + 4)
        self.value_label.setMinimumWidth(self.fps_label.minimumWidth())
        for name, slider, label, hint in ((self.fps_name, self.fps_slider, self.fps_label, self.fps_range_label),
                                          (self.value_name, self.value_slider, self.value_label, self.value_hint)):
            page = QWidget()
            grid = QGridLayout(page)
            grid.setContentsMargins(0, 0, 0, 0)
            grid.addWidget(name, 0, 0)
            grid.addWidget(slider, 0, 1)
            grid.addWidget(label, 0, 2)
            grid.addWidget(hint, 1, 1, 1, 2)
            grid.setColumnStretch(1, 1)
            self.pages.addWidget(page)
        forced = QWidget()
        grid = QGridLayout(forced)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setColumnMinimumWidth(0, name_width)
        grid.addWidget(self.forced_hint, 0, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(1, 1)
        self.pages.addWidget(forced)
        grid = QGridLayout(self)
        grid.addWidget(mode_name, 0, 0)
        grid.addWidget(self.mode_box, 0, 1)
        grid.addWidget(self.pages, 1, 0, 1, 2)
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
        self._sync_page()

    def set_target_fps(self, fps: float) -> None:
        """Move the slider to ``fps`` without emitting; the range grows to include it."""
        units = round(fps * _FPS_STEPS)
        low, high = self.fps_slider.minimum(), self.fps_slider.maximum()
        if not low <= units <= high:
            self._set_fps_units(min(low, units), max(high, units))
        self.fps_slider.blockSignals(True)
        self.fps_slider.setValue(units)
        self.fps_slider.blockSignals(False)
        self.fps_label.setText(f"{_fps_text(units)} fps")

    def set_fps_range(self, low: float, high: float, measured: bool = False) -> None:
        """Limits of the target-FPS slider; ``measured`` when they come from the exit costs."""
        self._measured = measured or self._measured
        self._set_fps_units(round(low * _FPS_STEPS), round(high * _FPS_STEPS))

    def _set_fps_units(self, low: int, high: int) -> None:
        """The slider's limits in its own units; the range label is written from them, so that
        it names exactly the values the slider stops at."""
        current = self.fps_slider.value()
        self.fps_slider.blockSignals(True)
        self.fps_slider.setRange(low, high)
        self.fps_slider.setPageStep(_FPS_STEPS)
        self.fps_slider.setValue(current)
        self.fps_slider.blockSignals(False)
        detail = "from the measured exit costs" if self._measured else "until the exit costs are measured"
        low_text, high_text = _fps_text(self.fps_slider.minimum()), _fps_text(self.fps_slider.maximum())
        self.fps_range_label.setText(f"{low_text} – {high_text} fps, {detail}")
        self.fps_label.setText(f"{_fps_text(self.fps_slider.value())} fps")

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
        self._sync_page()
        self.modeChanged.emit(self.kind, self.value())

    def _on_fps_moved(self, position: int) -> None:
        self.fps_label.setText(f"{_fps_text(position)} fps")
        self.targetFpsChanged.emit(position / _FPS_STEPS)

    def _on_value_moved(self, position: int) -> None:
        if self.kind not in self._values:
            return
        self._values[self.kind] = position / _VALUE_STEPS
        self.value_label.setText(f"{position / _VALUE_STEPS:.2f}")
        self.modeChanged.emit(self.kind, self._values[self.kind])

    def _sync_page(self) -> None:
        kind = self.kind
        self.pages.setCurrentIndex(_PAGES[kind])
        if kind in self._values:
            self.value_name.setText("Threshold" if kind == "threshold" else "Exit-2 share")
            self.value_hint.setText(_HINTS[kind])
            self.value_slider.setToolTip(_HINTS[kind])
            self.value_slider.blockSignals(True)
            self.value_slider.setValue(round(self._values[kind] * _VALUE_STEPS))
            self.value_slider.blockSignals(False)
            self.value_label.setText(f"{self._values[kind]:.2f}")
        elif kind in _HINTS:
            self.forced_hint.setText(_HINTS[kind])
