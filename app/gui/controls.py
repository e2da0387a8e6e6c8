"""The side panel: the control groups stacked in a scrollable column.

The groups (:mod:`source_controls`, :mod:`routing_controls`, :mod:`playback_controls`,
:mod:`class_filter`) only emit intent signals and expose setters; the session wires them.
"""

from __future__ import annotations

import logging

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from app.gui.class_filter import ClassFilter
from app.gui.playback_controls import PlaybackControls
from app.gui.routing_controls import RoutingControls
from app.gui.source_controls import ModelControls, SourceControls

logger = logging.getLogger(__name__)

PANEL_WIDTH = 340


class ControlPanel(QScrollArea):
    """Holds one instance of each control group as attributes, in display order."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = SourceControls()
        self.model = ModelControls()
        self.routing = RoutingControls()
        self.playback = PlaybackControls()
        self.classes = ClassFilter()
        column = QWidget()
        layout = QVBoxLayout(column)
        layout.setContentsMargins(6, 6, 6, 6)
        for group in (self.playback, self.routing, self.source, self.model, self.classes):
            layout.addWidget(group)
        layout.addStretch(1)
        self.setWidget(column)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        # The column fits the panel's width; only a short window needs vertical scrolling.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedWidth(PANEL_WIDTH)
