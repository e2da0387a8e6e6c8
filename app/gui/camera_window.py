"""The multi-camera window: the camera grid on the left, routing and telemetry on the right."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.gui.camera_grid import CameraGrid
from app.gui.camera_telemetry import CameraTelemetry
from app.gui.controls import PANEL_WIDTH
from app.gui.main_window import AppWindow
from app.gui.routing_controls import RoutingControls

logger = logging.getLogger(__name__)

HINT = "Click a camera to enlarge it; click again or press Esc for the grid. The target is the total over all cameras."


class CameraWindow(AppWindow):
    """The camera grid on the left; routing, telemetry and a hint on the right."""

    def __init__(self, names: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"DynaStream · {len(names)} camera{'s' if len(names) != 1 else ''}")
        self.grid = CameraGrid(names)
        self.routing = RoutingControls()
        self.telemetry = CameraTelemetry(names)
        self._layout_widgets()
        self._add_shortcuts()
        self.resize(1280, 720)  # a 2 x 2 grid of 16:9 or 5:3 cameras, with little letterboxing

    def _layout_widgets(self) -> None:
        hint = QLabel(HINT)
        hint.setObjectName("statusName")
        hint.setWordWrap(True)
        panel = QWidget()
        panel.setFixedWidth(PANEL_WIDTH)
        column = QVBoxLayout(panel)
        column.setContentsMargins(6, 0, 0, 0)
        column.addWidget(self.routing)
        column.addWidget(self.telemetry)
        column.addWidget(hint)
        column.addStretch(1)
        self.panel = panel
        self._lay_out(self.grid, panel)

    def _add_shortcuts(self) -> None:
        bindings = {
            "F": self.toggle_fullscreen,
            "Esc": self.go_back,
            "+": lambda: self.routing.step_target_fps(+1),
            "=": lambda: self.routing.step_target_fps(+1),  # "+" without Shift on most layouts
            "-": lambda: self.routing.step_target_fps(-1),
        }
        self._bind_keys(bindings)

    def go_back(self) -> None:
        """Esc: from an enlarged camera back to the grid, else out of full screen."""
        if self.grid.enlarged:
            self.grid.show_all()
        else:
            self.leave_fullscreen()

    def _panels(self) -> list[QWidget]:
        return [self.panel]
