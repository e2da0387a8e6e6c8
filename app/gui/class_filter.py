"""Which classes are drawn: a checkable list of the model's class names."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QGroupBox, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

logger = logging.getLogger(__name__)


class ClassFilter(QGroupBox):
    """Signals:
        classFilterChanged(names): the classes to keep; an empty tuple keeps every class.
    """

    classFilterChanged = pyqtSignal(tuple)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Classes", parent)
        self.list = QListWidget()
        self.list.setMaximumHeight(120)
        self.all_button = QPushButton("Show all")
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addWidget(self.all_button)
        self.list.itemChanged.connect(self._on_item_changed)
        self.all_button.clicked.connect(self._check_all)

    def set_classes(self, names: Sequence[str], keep: Sequence[str] = ()) -> None:
        """List the model's classes, checking ``keep`` (every class when empty); does not emit."""
        self.list.blockSignals(True)
        self.list.clear()
        for name in names:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if not keep or name in keep else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.blockSignals(False)

    def selected(self) -> tuple[str, ...]:
        """The checked classes, or ``()`` when all of them are (no filtering)."""
        items = [self.list.item(row) for row in range(self.list.count())]
        checked = tuple(item.text() for item in items if item.checkState() == Qt.CheckState.Checked)
        return () if len(checked) == len(items) else checked

    def _check_all(self) -> None:
        self.list.blockSignals(True)
        for row in range(self.list.count()):
            self.list.item(row).setCheckState(Qt.CheckState.Checked)
        self.list.blockSignals(False)
        self.classFilterChanged.emit(self.selected())

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        checked = [self.list.item(row).checkState() == Qt.CheckState.Checked for row in range(self.list.count())]
        if not any(checked):
            # An empty selection would read as "no filter" downstream (the recorder keeps every
            # class for an empty list), so at least one class stays checked.
            self.list.blockSignals(True)
            item.setCheckState(Qt.CheckState.Checked)
            self.list.blockSignals(False)
            return
        self.classFilterChanged.emit(self.selected())
