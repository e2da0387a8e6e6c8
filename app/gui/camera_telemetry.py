"""Live numbers of a multi-camera run: the total rate against the budget, and each camera's share."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import QGridLayout, QGroupBox, QLabel, QWidget

from app.gui.labels import ElidedLabel
from app.gui.telemetry import RECENT_SECONDS, RecentCounts, exit2_share_text
from app.gui.theme import ERROR, GOOD, TEXT, WARNING
from engine.runtime.monitor import CameraStats

logger = logging.getLogger(__name__)

TOTAL_ROWS = ("Processing", "Exit-2 share", "Cameras up")
_NAME_WIDTH = 130  # camera names are up to 64 characters: the rest is elided


def _set(label: QLabel, text: str, color: QColor = TEXT) -> None:
    label.setText(text)
    label.setStyleSheet(f"color: {color.name()};")


class CameraTelemetry(QGroupBox):
    """The totals over every camera, then one row per camera (rate, exit-2 share over the recent stream).

    As in the single-source panel, a rate not measurable yet shows as "–", and shares are over
    the last :data:`~app.gui.telemetry.RECENT_SECONDS` rather than since the start.
    """

    def __init__(self, names: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__("Telemetry", parent)
        grid = QGridLayout(self)
        grid.setVerticalSpacing(3)
        self._totals: dict[str, QLabel] = {}
        for row, title in enumerate(TOTAL_ROWS):
            self._totals[title] = self._add_row(grid, row, title, "statusValue")
        first = len(TOTAL_ROWS)
        heading = QLabel(f"Camera · fps · exit-2 share (last {RECENT_SECONDS:.0f} s)")
        heading.setObjectName("statusName")
        grid.addWidget(heading, first, 0, 1, 2)
        self._cameras: dict[str, QLabel] = {}
        for offset, name in enumerate(names, start=first + 1):
            self._cameras[name] = self._add_row(grid, offset, name, None)
        grid.setColumnStretch(1, 1)
        self._total_shares = RecentCounts()
        self._shares = {name: RecentCounts() for name in names}

    @staticmethod
    def _add_row(grid: QGridLayout, row: int, title: str, value_style: str | None) -> QLabel:
        name, value = QLabel(), ElidedLabel("–")
        name.setObjectName("statusName")
        name.setText(name.fontMetrics().elidedText(title, Qt.TextElideMode.ElideRight, _NAME_WIDTH))
        name.setToolTip(title)
        if value_style:
            value.setObjectName(value_style)
        grid.addWidget(name, row, 0)
        grid.addWidget(value, row, 1)
        return value

    def text(self, row: str) -> str:
        """The value shown in a total row (one of :data:`TOTAL_ROWS`) or a camera's row."""
        return (self._totals.get(row) or self._cameras[row]).text()

    def update_stats(self, stats: Mapping[str, CameraStats], target_fps: float | None) -> None:
        """Refresh every row; ``target_fps`` is None outside "hold target FPS" mode."""
        lanes = [camera.lane for camera in stats.values()]
        fps = sum(lane.processing_fps for lane in lanes)
        rate = f"{fps:.1f}" if fps > 0 else "–"  # a rate needs two frames of some camera
        if target_fps is None:
            _set(self._totals["Processing"], f"{rate} fps")
        else:
            color = (GOOD if fps >= 0.9 * target_fps else WARNING) if fps > 0 else TEXT
            _set(self._totals["Processing"], f"{rate} / {target_fps:.1f} fps", color)
        processed = sum(lane.frames_processed for lane in lanes)
        second = sum(lane.frames_second_exit for lane in lanes)
        self._total_shares.add((processed, second))
        share, tooltip = exit2_share_text(self._total_shares, processed, second)
        _set(self._totals["Exit-2 share"], f"{share} (last {RECENT_SECONDS:.0f} s)" if share != "–" else share)
        self._totals["Exit-2 share"].setToolTip(tooltip)
        up = sum(camera.state == "live" for camera in stats.values())
        _set(self._totals["Cameras up"], f"{up} / {len(stats)}", GOOD if up == len(stats) else WARNING)
        for name, camera in stats.items():
            label = self._cameras.get(name)
            if label is not None:
                self._set_camera(label, self._shares[name], camera)

    @staticmethod
    def _set_camera(label: QLabel, recent: RecentCounts, camera: CameraStats) -> None:
        lane = camera.lane
        recent.add((lane.frames_processed, lane.frames_second_exit))
        if camera.state == "failed":
            _set(label, "failed", ERROR)
            return
        rate = f"{lane.processing_fps:.1f} fps" if lane.processing_fps > 0 else "– fps"
        share, tooltip = exit2_share_text(recent, lane.frames_processed, lane.frames_second_exit)
        _set(label, f"{rate} · {share}" if lane.frames_processed else "–")
        label.setToolTip(tooltip)
