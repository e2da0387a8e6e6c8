"""The scrolling chart of the last 30 s: processing rate vs target, and per-frame routing
(router score coloured by the exit taken, against the threshold)."""

from __future__ import annotations

import logging
import math
import time
from collections import deque

import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QVBoxLayout, QWidget

from app.gui.theme import BASE, MUTED_TEXT, WARNING, exit_color
from engine.detections import Detections

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 30.0
_MAX_POINTS = 4000  # about 130 fps for 30 s; older points fall off before they leave the window


class TelemetryChart(QWidget):
    """Two stacked plots sharing a time axis in seconds before now (-30 ... 0).

    pyqtgraph is imported here, when the first chart is built, rather than at module import:
    it must find the QApplication already created, and importing the GUI modules stays cheap.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        import pyqtgraph as pg

        self._pg = pg
        self._rates: deque[tuple[float, float, float]] = deque(maxlen=_MAX_POINTS)  # (t, fps, target)
        self._frames: deque[tuple[float, float, float, int]] = deque(maxlen=_MAX_POINTS)  # (t, score, thr, exit)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(BASE)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.rate_plot = self._add_plot(0, "fps")
        self.route_plot = self._add_plot(1, "router score")
        self.route_plot.setXLink(self.rate_plot)
        self.route_plot.setYRange(-0.08, 1.12, padding=0.0)  # room for the 0 and 1 tick labels
        self.route_plot.setLabel("bottom", "seconds ago")
        self._build_items()
        self.refresh()

    def _add_plot(self, row: int, unit: str):
        plot = self.canvas.addPlot(row=row, col=0)
        plot.setLabel("left", unit, color=MUTED_TEXT.name())
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.setXRange(-WINDOW_SECONDS, 0.0, padding=0.0)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.getAxis("left").setWidth(44)  # equal widths keep the two time axes aligned
        return plot

    def _build_items(self) -> None:
        pg = self._pg
        self.fps_curve = self.rate_plot.plot(pen=pg.mkPen((220, 220, 225), width=2))
        self.target_curve = self.rate_plot.plot(pen=pg.mkPen(WARNING, width=2, style=Qt.PenStyle.DashLine))
        self.rate_plot.setTitle(_legend([("processing fps", "#dcdce1", "━"), ("target", WARNING.name(), "╍")]),
                                size="9pt")
        self.rate_plot.getAxis("bottom").setStyle(showValues=False)  # the lower plot labels the shared axis
        threshold_color = (120, 160, 255)
        self.threshold_curve = self.route_plot.plot(pen=pg.mkPen(threshold_color, width=2), connect="finite")
        self.exit_points = {
            exit_taken: self.route_plot.plot(pen=None, symbol="o", symbolSize=5, symbolPen=None,
                                             symbolBrush=pg.mkBrush(exit_color(exit_taken)))
            for exit_taken in (1, 2)
        }
        legend = [("threshold", "#78a0ff", "━"), ("router score, exit 1", exit_color(1).name(), "●"),
                  ("exit 2", exit_color(2).name(), "●")]
        self.route_plot.setTitle(_legend(legend), size="9pt")
        self.route_plot.getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")]])

    def add_frame(self, detections: Detections, when: float | None = None) -> None:
        """Record one processed frame's routing (drawn at the next :meth:`refresh`)."""
        threshold = math.nan if detections.shown_threshold is None else float(detections.shown_threshold)
        when = time.monotonic() if when is None else when
        self._frames.append((when, float(detections.shown_score), threshold, detections.exit))

    def add_rate(self, fps: float, target_fps: float | None, when: float | None = None) -> None:
        """Record the processing rate (and the target, when there is one)."""
        target = math.nan if target_fps is None else target_fps
        self._rates.append((time.monotonic() if when is None else when, fps, target))

    def clear(self) -> None:
        self._rates.clear()
        self._frames.clear()
        self.refresh()

    def refresh(self, now: float | None = None) -> None:
        """Redraw with the newest sample at the right edge; called a few times a second."""
        now = now if now is not None else time.monotonic()
        rates = _recent(self._rates, now)
        self.fps_curve.setData(rates[:, 0], rates[:, 1])
        self.target_curve.setData(rates[:, 0], rates[:, 2], connect="finite")
        frames = _recent(self._frames, now)
        self.threshold_curve.setData(frames[:, 0], frames[:, 2], connect="finite")
        for exit_taken, item in self.exit_points.items():
            chosen = frames[frames[:, 3] == exit_taken]
            item.setData(chosen[:, 0], chosen[:, 1])
        top = np.nanmax(rates[:, 1:]) if len(rates) and np.isfinite(rates[:, 1:]).any() else 10.0
        self.rate_plot.setYRange(0.0, max(1.0, float(top)) * 1.15, padding=0.0)


def _legend(entries: list[tuple[str, str, str]]) -> str:
    """A one-line legend as rich text: each entry's marker in its colour, then its name."""
    parts = [f"<span style='color:{color}'>{marker}</span>&nbsp;<span style='color:#b4b8be'>{name}</span>"
             for name, color, marker in entries]
    return "&nbsp;&nbsp;&nbsp;&nbsp;".join(parts)


def _recent(samples: deque, now: float) -> np.ndarray:
    """Samples of the last :data:`WINDOW_SECONDS` as an array, time converted to "seconds ago"."""
    if not samples:
        return np.zeros((0, 4))
    data = np.asarray(samples, dtype=float)
    data = data[data[:, 0] >= now - WINDOW_SECONDS]
    data[:, 0] -= now
    return data
