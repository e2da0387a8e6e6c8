"""Colours and the application style: a dark Fusion theme so the video stands out."""

from __future__ import annotations

import functools
import logging

from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication

from engine.render import EXIT_COLORS, class_color

logger = logging.getLogger(__name__)

WINDOW = QColor(32, 34, 38)
BASE = QColor(24, 25, 28)
TEXT = QColor(225, 227, 230)
MUTED_TEXT = QColor(150, 154, 160)
ACCENT = QColor(70, 140, 230)
ERROR = QColor(200, 60, 60)
WARNING = QColor(230, 170, 40)
GOOD = QColor(90, 190, 110)

# Applied on top of the palette; only what the palette cannot express.
_STYLE_SHEET = """
QGroupBox {
    font-weight: bold; border: 1px solid #3a3d42; border-radius: 4px;
    margin-top: 10px; padding: 6px 4px 4px 4px;
}
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; color: #c8cbd0; }
QPushButton { padding: 4px 10px; }
QPushButton:checked { background-color: #b33a3a; color: white; }
QLabel#errorBanner { background-color: #8a2a2a; color: white; padding: 6px 10px; border-radius: 3px; }
QLabel#statusValue { font-size: 11pt; font-weight: bold; }
QLabel#statusName { color: #969aa0; }
"""


def exit_color(exit_taken: int) -> QColor:
    """The colour of an exit, shared with the recordings drawn by :mod:`engine.render`."""
    red, green, blue = EXIT_COLORS.get(exit_taken, (200, 200, 200))
    return QColor(red, green, blue)


@functools.lru_cache(maxsize=256)
def _class_rgb(class_id: int) -> tuple[int, int, int]:
    return class_color(class_id)


def class_qcolor(class_id: int) -> QColor:
    """The colour of a class, the same as in recordings and saved images."""
    return QColor(*_class_rgb(class_id))


def apply_theme(app: QApplication) -> None:
    """Fusion style with a dark palette; looks the same on every desktop and under Xvfb."""
    app.setStyle("Fusion")
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: WINDOW,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BASE,
        QPalette.ColorRole.AlternateBase: WINDOW,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: QColor(48, 51, 56),
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.ToolTipBase: BASE,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: MUTED_TEXT,
    }
    for role, color in roles.items():
        palette.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, MUTED_TEXT)
    app.setPalette(palette)
    app.setStyleSheet(_STYLE_SHEET)
