"""The search bar: query text, an optional image query, and filters.

The bar only builds a ``QueryRequest``; the main window runs it. Text uses
the core's query syntax (``dog on a beach -people``); dropping an image
file anywhere on the bar makes it the image query ("more like this").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, time

from PySide6.QtCore import QDate, QEvent, QMimeData, QObject, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from clipdesk.imageio import is_supported
from clipdesk.search import Filters

PLACEHOLDER = "Search your photos — e.g. dog on a beach, -people"
ALL_FOLDERS = "All folders"
ALL_TYPES = "All types"
# Menu entry → what Filters.types matches (Pillow format names or extensions).
# MPO is the multi-picture JPEG many phones write; Pillow names HEIC "HEIF".
TYPES: dict[str, tuple[str, ...]] = {
    "JPEG": ("jpeg", "mpo"),
    "PNG": ("png",),
    "HEIC": ("heif", "heic"),
    "WebP": ("webp",),
    "GIF": ("gif",),
    "TIFF": ("tiff",),
    "BMP": ("bmp",),
}


@dataclass
class QueryRequest:
    """What the user asked for: query text, image files, filters."""

    text: str
    images: list[str] = field(default_factory=list)
    filters: Filters = field(default_factory=Filters)
    sort: str = "relevance"  # or "date"


def image_from_mime(mime: QMimeData) -> str | None:
    """The first local file in ``mime`` that clipdesk can read, else None."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and is_supported(url.toLocalFile()):
            return url.toLocalFile()
    return None


def _short(path: str) -> str:
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home != "/" and path.startswith(home + os.sep) else path


class SearchBar(QWidget):
    """Query line, image chip and filter controls.

    Signals:
        query_submitted(QueryRequest): Enter, an image drop, removing the
            image chip while text remains, or a filter change while a query
            is active.
        cleared(): the user emptied the query (no text and no image).
        filters_changed(Filters): any filter control changed.

    ``set_text``/``set_image``/``clear_image`` are silent, like setText;
    call ``submit()`` to run the query afterwards.
    """

    query_submitted = Signal(object)
    cleared = Signal()
    filters_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: str | None = None
        self._empty = True
        self.setAcceptDrops(True)

        self.query_edit = QLineEdit(placeholderText=PLACEHOLDER, clearButtonEnabled=True)
        self.query_edit.returnPressed.connect(self.submit)
        self.query_edit.textEdited.connect(self._on_text_edited)
        # QLineEdit takes drops for itself; an image file should reach the bar.
        self.query_edit.installEventFilter(self)
        self.line_edit = self.query_edit  # the name the main window's tests use

        self.image_chip = QFrame(objectName="imageChip", frameShape=QFrame.Shape.StyledPanel)
        self.image_chip_label = QLabel()
        self.image_chip_remove = QToolButton(text="×", autoRaise=True, toolTip="Remove the image from the query")
        self.image_chip_remove.clicked.connect(self._remove_chip)
        chip_layout = QHBoxLayout(self.image_chip)
        chip_layout.setContentsMargins(6, 0, 0, 0)
        chip_layout.addWidget(self.image_chip_label)
        chip_layout.addWidget(self.image_chip_remove)
        self.image_chip.hide()

        self.folder_combo = QComboBox(toolTip="Only photos under this folder")
        self.folder_combo.addItem(ALL_FOLDERS, None)
        self.type_combo = QComboBox(toolTip="Only this file type")
        self.type_combo.addItem(ALL_TYPES, ())
        for name, types in TYPES.items():
            self.type_combo.addItem(name, types)
        self.date_from_check, self.date_from_edit = self._date_control("From")
        self.date_to_check, self.date_to_edit = self._date_control("To")
        self.sort_combo = QComboBox(toolTip="Order of the results: the same photos either way")
        self.sort_combo.addItem("Most relevant first", "relevance")
        self.sort_combo.addItem("Newest first", "date")

        top = QHBoxLayout()
        top.addWidget(self.image_chip)
        top.addWidget(self.query_edit, 1)
        filters = QHBoxLayout()
        filters.addWidget(self.folder_combo, 1)
        for widget in (self.date_from_check, self.date_from_edit, self.date_to_check, self.date_to_edit):
            filters.addWidget(widget)
        filters.addWidget(self.type_combo)
        filters.addWidget(self.sort_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(filters)

        self.folder_combo.currentIndexChanged.connect(self._on_filter_changed)
        self.type_combo.currentIndexChanged.connect(self._on_filter_changed)
        self.sort_combo.currentIndexChanged.connect(self.submit)

    def _date_control(self, label: str) -> tuple[QCheckBox, QDateEdit]:
        check = QCheckBox(label, toolTip=f"Limit by date taken ({label.lower()}); unchecked means no limit")
        edit = QDateEdit(QDate.currentDate(), calendarPopup=True, displayFormat="yyyy-MM-dd", enabled=False)
        check.toggled.connect(edit.setEnabled)
        check.toggled.connect(self._on_filter_changed)
        edit.dateChanged.connect(lambda _date: check.isChecked() and self._on_filter_changed())
        return check, edit

    # -- public API --------------------------------------------------------------

    def text(self) -> str:
        return self.query_edit.text().strip()

    def set_text(self, text: str) -> None:
        """Put ``text`` in the query line (does not submit)."""
        self.query_edit.setText(text)
        self._empty = not self.text() and not self._image

    def image(self) -> str | None:
        return self._image

    def set_image(self, path: str) -> None:
        """Show ``path`` as the image query (does not submit)."""
        self._image = path
        self.image_chip_label.setText(os.path.basename(path) or path)
        self.image_chip.setToolTip(path)
        self.image_chip.show()
        self._empty = False

    def clear_image(self) -> None:
        """Drop the image query (does not submit)."""
        self._image = None
        self.image_chip.hide()
        self._empty = not self.text()

    def set_folders(self, folders: list[str]) -> None:
        """Offer ``folders`` in the folder filter, keeping the current choice if still there."""
        current = self.folder_combo.currentData()
        self.folder_combo.blockSignals(True)
        self.folder_combo.clear()
        self.folder_combo.addItem(ALL_FOLDERS, None)
        for path in folders:
            self.folder_combo.addItem(_short(path), path)
            self.folder_combo.setItemData(self.folder_combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        index = self.folder_combo.findData(current) if current else 0
        self.folder_combo.setCurrentIndex(max(index, 0))
        self.folder_combo.blockSignals(False)
        if index < 0:  # the chosen folder went away: the filter changed
            self._on_filter_changed()

    def focus_query(self) -> None:
        self.query_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.query_edit.selectAll()

    def filters(self) -> Filters:
        def day(check: QCheckBox, edit: QDateEdit, at: time) -> datetime | None:
            return datetime.combine(edit.date().toPython(), at) if check.isChecked() else None

        return Filters(
            folder=self.folder_combo.currentData() or None,
            date_from=day(self.date_from_check, self.date_from_edit, time.min),
            date_to=day(self.date_to_check, self.date_to_edit, time.max),
            types=tuple(self.type_combo.currentData() or ()),
        )

    def request(self) -> QueryRequest:
        return QueryRequest(self.text(), [self._image] if self._image else [], self.filters(),
                            self.sort_combo.currentData())

    def submit(self) -> None:
        """Emit ``query_submitted`` when there is text or an image to search for."""
        if self.text() or self._image:
            self.query_submitted.emit(self.request())

    # -- reactions -----------------------------------------------------------------

    def _on_text_edited(self, _text: str) -> None:
        empty = not self.text() and not self._image
        if empty and not self._empty:
            self.cleared.emit()
        self._empty = empty

    def _remove_chip(self) -> None:
        self.clear_image()
        if self.text():
            self.submit()
        else:
            self.cleared.emit()

    def _on_filter_changed(self, *_args) -> None:
        self.filters_changed.emit(self.filters())
        self.submit()  # re-run an active query under the new filters; no-op when empty

    # -- drops ---------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if image_from_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        path = image_from_mime(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.set_image(path)
        self.submit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if watched is self.query_edit and kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            if image_from_mime(event.mimeData()):
                if kind == QEvent.Type.Drop:
                    self.dropEvent(event)
                else:
                    event.acceptProposedAction()
                return True
        return super().eventFilter(watched, event)
