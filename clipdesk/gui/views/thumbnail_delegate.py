"""How one grid cell is drawn and sized."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem


class ThumbnailDelegate(QStyledItemDelegate):
    """Draws every thumbnail centred in the same square, so captions line up.

    Attributes:
        square: the box a thumbnail is centred in (the thumbnail size).
        item_size: every item's size hint (thumbnail plus two caption lines).
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.square = QSize(160, 160)
        self.item_size = QSize(168, 200)

    def sizeHint(self, option: QStyleOptionViewItem, index) -> QSize:
        # Fixed, without asking the model: layout must never request a
        # thumbnail (Qt sizes uniform items from an arbitrary row, e.g. the last).
        return self.item_size

    def initStyleOption(self, option: QStyleOptionViewItem, index) -> None:
        super().initStyleOption(option, index)
        # A QPixmap decoration is otherwise drawn at its own size, so a 4:3
        # photo would lift its caption above its neighbours'; the icon is
        # centred in the square instead.
        option.decorationSize = self.square
