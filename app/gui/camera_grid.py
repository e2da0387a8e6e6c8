"""The camera grid: one tile per camera (its picture with boxes and exit badge, its name and state).

A click on a tile enlarges it to the whole grid; a second click (or :meth:`CameraGrid.show_all`,
which the window binds to Esc) brings the grid back. Tiles only paint what they are given.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QMouseEvent, QResizeEvent
from PyQt6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.gui.labels import ElidedLabel
from app.gui.telemetry import PLAYED_KINDS, offline_state
from app.gui.theme import ERROR, GOOD, MUTED_TEXT, WARNING
from app.gui.video_view import VideoView, ViewState
from engine.runtime.frames import Result
from engine.runtime.monitor import CameraStats
from engine.runtime.sources import SourceKind

logger = logging.getLogger(__name__)

TILE_MIN_SIZE = QSize(240, 150)
DEFAULT_ASPECT = 16 / 9  # of the pictures, until the first frame tells


@dataclass(frozen=True)
class CameraStatus:
    """How a tile presents its camera: a short header line and, unless live, a state over the picture.

    Attributes:
        text: the header's state, e.g. "live · 9.8 fps", "reconnecting in 3 s", "failed: ...".
        color: the header text's colour.
        view: what the picture shows instead of "live" (None while live).
    """

    text: str
    color: QColor
    view: ViewState | None = None


def camera_status(stats: CameraStats, kind: SourceKind | None = None) -> CameraStatus:
    """A camera's state in words: live (playing, for a file) / connecting / reconnecting in N s /
    ended / failed: why."""
    state, capture = stats.state, stats.capture
    if state == "failed":
        message = stats.failure or capture.last_error or "stream failed"
        return CameraStatus(f"failed: {message}", ERROR, ViewState("Failed", message, "error"))
    if state == "live":
        fps = stats.lane.processing_fps
        playing = "playing" if kind in PLAYED_KINDS else "live"
        return CameraStatus(f"{playing} · {fps:.1f} fps" if fps > 0 else playing, GOOD)
    if state == "reconnecting":
        wait = f" in {capture.next_retry_in:.0f} s" if capture.next_retry_in is not None else ""
        return CameraStatus(f"reconnecting{wait}", WARNING, offline_state(capture))
    if state == "connecting":
        return CameraStatus("connecting…", WARNING, offline_state(capture))
    if state == "eof":
        return CameraStatus("ended", MUTED_TEXT, ViewState("Ended", "the video reached its end"))
    return CameraStatus(state, MUTED_TEXT, ViewState(state.capitalize()))


class CameraTile(QFrame):
    """One camera: a header (name, state) above its picture.

    Signals:
        clicked(name): the user clicked the tile.
    """

    clicked = pyqtSignal(str)

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.setObjectName("cameraTile")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.view = VideoView()
        self.view.setMinimumSize(TILE_MIN_SIZE)
        self.name_label = QLabel(name)
        font = self.name_label.font()
        font.setBold(True)
        self.name_label.setFont(font)
        # A thin border tells the tiles apart where two dark letterbox bands meet.
        self.setStyleSheet("QFrame#cameraTile { border: 1px solid #3a3d42; border-radius: 3px; }")
        self.state_label = ElidedLabel()
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        header = QHBoxLayout()
        header.setContentsMargins(6, 2, 6, 2)
        header.addWidget(self.name_label)
        header.addWidget(self.state_label, 1)
        column = QVBoxLayout(self)
        column.setContentsMargins(2, 2, 2, 2)
        column.setSpacing(2)
        column.addLayout(header)
        column.addWidget(self.view, 1)
        self.set_status(CameraStatus("connecting…", WARNING, ViewState("Connecting…")))

    def state_text(self) -> str:
        """The header's state line, in full."""
        return self.state_label.text()

    def show_result(self, result: Result) -> None:
        self.view.show_result(result)

    def set_status(self, status: CameraStatus) -> None:
        self.state_label.setText(status.text)
        self.state_label.setStyleSheet(f"color: {status.color.name()};")
        self.view.set_state(status.view)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self.name)
        super().mousePressEvent(event)


class CameraGrid(QWidget):
    """The tiles in a near-square grid, or one of them enlarged.

    Signals:
        enlargedChanged(name): the enlarged camera ("" when the whole grid is shown).
    """

    enlargedChanged = pyqtSignal(str)

    def __init__(self, names: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if not names:
            raise ValueError("a camera grid needs at least one camera")
        self.tiles = {name: CameraTile(name) for name in names}
        self._enlarged = ""
        self._columns = 0  # of the grid as last arranged
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        for tile in self.tiles.values():
            tile.clicked.connect(self.toggle)
        self._arrange()

    def sizeHint(self) -> QSize:
        return QSize(960, 600)

    @property
    def enlarged(self) -> str:
        """The enlarged camera's name, or "" while the grid shows every tile."""
        return self._enlarged

    def tile(self, name: str) -> CameraTile:
        return self.tiles[name]

    def columns(self) -> int:
        """Columns of the grid: the count that shows the pictures largest in the grid's current size.

        Pictures keep their aspect ratio (the newest frame's; 16:9 before any), so two cameras
        in a wide window sit one above the other rather than as two tall, letterboxed tiles.
        """
        count, spacing = len(self.tiles), self._layout.spacing()
        header = self.fontMetrics().height() + 10  # a tile's name and state line
        aspect = self._picture_aspect()

        def picture_width(columns: int) -> float:
            rows = math.ceil(count / columns)
            cell_width = (self.width() - spacing * (columns - 1)) / columns
            cell_height = (self.height() - spacing * (rows - 1)) / rows - header
            return min(cell_width, cell_height * aspect)

        if self.width() <= 0 or self.height() <= header:  # not laid out yet: near square
            return math.ceil(math.sqrt(count))
        # Ties go to fewer columns.
        return max(range(1, count + 1), key=lambda columns: (round(picture_width(columns)), -columns))

    def _picture_aspect(self) -> float:
        for tile in self.tiles.values():
            result = tile.view.result
            if result is not None:
                width, height = result.frame.size
                return width / height if height else DEFAULT_ASPECT
        return DEFAULT_ASPECT

    def show_result(self, name: str, result: Result) -> None:
        first = all(tile.view.result is None for tile in self.tiles.values())
        self.tiles[name].show_result(result)
        if first:
            self._rearrange_if_needed()  # the pictures' aspect ratio is known now

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rearrange_if_needed()

    def _rearrange_if_needed(self) -> None:
        if not self._enlarged and self.columns() != self._columns:
            self._arrange()

    def set_status(self, name: str, status: CameraStatus) -> None:
        self.tiles[name].set_status(status)

    def enlarge(self, name: str) -> None:
        """Show only ``name``'s tile, as large as the grid."""
        if name not in self.tiles:
            raise KeyError(f"unknown camera {name!r}")
        if name != self._enlarged:
            self._enlarged = name
            self._arrange()
            self.enlargedChanged.emit(name)

    def show_all(self) -> None:
        """Back to every tile."""
        if self._enlarged:
            self._enlarged = ""
            self._arrange()
            self.enlargedChanged.emit("")

    def toggle(self, name: str) -> None:
        """A click: enlarge a tile of the grid, or go back to the grid from the enlarged tile."""
        if self._enlarged:
            self.show_all()
        else:
            self.enlarge(name)

    def _arrange(self) -> None:
        while self._layout.count():
            self._layout.takeAt(0)
        shown = [self._enlarged] if self._enlarged else list(self.tiles)
        columns = 1 if self._enlarged else self.columns()
        if not self._enlarged:
            self._columns = columns
        rows = math.ceil(len(shown) / columns)
        for name, tile in self.tiles.items():
            tile.setVisible(name in shown)
        for index, name in enumerate(shown):
            self._layout.addWidget(self.tiles[name], index // columns, index % columns)
        # Equal cells, also when the last row is not full; stretch left over from a bigger
        # arrangement would keep empty rows and columns.
        for row in range(max(self._layout.rowCount(), rows)):
            self._layout.setRowStretch(row, 1 if row < rows else 0)
        for column in range(max(self._layout.columnCount(), columns)):
            self._layout.setColumnStretch(column, 1 if column < columns else 0)
