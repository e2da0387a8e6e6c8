"""Small label widgets shared by the panels."""

from __future__ import annotations

import logging

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QPainter, QPaintEvent
from PyQt6.QtWidgets import QLabel, QSizePolicy, QWidget

logger = logging.getLogger(__name__)


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" to fit its width; the whole text is its tooltip.

    Its width never grows with the text, so a long state ("reconnecting in 8 s", an error) stays
    inside a fixed-width panel instead of being cut at the panel's edge. :meth:`text` is the
    whole text; :meth:`shown_text` what fits.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Ignored: the layout gives the label its width, the text does not ask for more.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def shown_text(self) -> str:
        """The text as drawn: whole, or shortened with "…" to the label's width."""
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width())

    def is_elided(self) -> bool:
        return self.shown_text() != self.text()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.setPen(self.palette().windowText().color())
            painter.drawText(self.contentsRect(), int(self.alignment()), self.shown_text())
        finally:
            painter.end()
