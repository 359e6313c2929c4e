"""The sidebar: library folders with their state, labels, and saved searches.

One two-column tree (name | count or state) with a header row per section.
The sidebar only reports what the user picked; the main window runs the
browse or search and confirms removals.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHeaderView,
    QMenu,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipdesk.store.queries import FolderSummary

ALL_PHOTOS = "All photos"
REMOVE_FOLDER_TEXT = "Remove from library… (the files on disk are not touched)"
REMOVE_SAVED_TEXT = "Remove saved search"
_KIND = Qt.ItemDataRole.UserRole  # "folder" | "label" | "saved"; None on section headers
_VALUE = Qt.ItemDataRole.UserRole + 1


def folder_state(summary: FolderSummary) -> str:
    """The default state text of a folder row: its photo count, or why it is not complete."""
    if summary.last_scan_at is None and not summary.photos:
        return "not scanned yet"
    count = "1 photo" if summary.photos == 1 else f"{summary.photos:,} photos"
    return count if summary.complete else f"{count} · scan incomplete"


class Sidebar(QWidget):
    """Folders, labels and saved searches.

    Signals:
        folder_selected(str): a folder path; "" for the "All photos" row.
        label_selected(str), saved_search_selected(str): the picked entry.
        add_folder_requested(): the "Add folder…" button or menu entry.
        remove_folder_requested(str), remove_saved_search_requested(str):
            from the context menu; the main window asks for confirmation.
        review_labels_requested(str), edit_labels_requested(str): from a
            label's context menu (that label) or the Labels header's ("").

    Selection changes emit at once; Enter or a double-click on the current
    row emits again, so a saved search can be re-run.
    """

    folder_selected = Signal(str)
    label_selected = Signal(str)
    saved_search_selected = Signal(str)
    add_folder_requested = Signal()
    remove_folder_requested = Signal(str)
    remove_saved_search_requested = Signal(str)
    review_labels_requested = Signal(str)
    edit_labels_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._summaries: dict[str, FolderSummary] = {}
        self._states: dict[str, str] = {}  # transient overrides, e.g. "indexing 120/500"
        self.tree = QTreeWidget(columnCount=2, headerHidden=True, rootIsDecorated=False, indentation=12)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._on_context_menu)
        self.tree.currentItemChanged.connect(lambda item, _previous: self._emit_for(item))
        self.tree.itemActivated.connect(lambda item, _column: self._emit_for(item))

        self.folders_header = self._section("Folders")
        self.labels_header = self._section("Labels")
        self.saved_header = self._section("Saved searches")
        self.all_photos_item = self._child(self.folders_header, "folder", "", ALL_PHOTOS)

        self.add_folder_button = QPushButton("Add folder…", toolTip="Add a folder of photos to the library")
        self.add_folder_button.clicked.connect(self.add_folder_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.add_folder_button)

    def _section(self, title: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(self.tree, [title])
        font = QFont(item.font(0))
        font.setBold(True)
        item.setFont(0, font)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled)  # a header, not a choice
        item.setExpanded(True)
        return item

    def _child(self, parent: QTreeWidgetItem, kind: str, value: str, text: str, extra: str = "") -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [text, extra])
        item.setData(0, _KIND, kind)
        item.setData(0, _VALUE, value)
        item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return item

    # -- filling -------------------------------------------------------------------

    def set_folders(self, folders: list[FolderSummary]) -> None:
        self._summaries = {f.path: f for f in folders}
        self._states = {p: s for p, s in self._states.items() if p in self._summaries}
        self._refill(self.folders_header, keep=1, rows=[("folder", f.path) for f in folders])

    def set_folder_state(self, path: str, text: str) -> None:
        """Show ``text`` (e.g. "indexing 120/500") for ``path``; "" restores the photo count."""
        if text:
            self._states[path] = text
        else:
            self._states.pop(path, None)
        item = self.folder_item(path)
        if item is not None:
            self._paint_folder(item, path)

    def set_labels(self, labels: list[tuple[str, int]]) -> None:
        self._refill(self.labels_header, keep=0, rows=[("label", name) for name, _ in labels])
        for i, (_name, count) in enumerate(labels):
            self.labels_header.child(i).setText(1, f"{count:,}")

    def set_saved_searches(self, searches: list[str]) -> None:
        self._refill(self.saved_header, keep=0, rows=[("saved", text) for text in searches])

    def _refill(self, header: QTreeWidgetItem, keep: int, rows: list[tuple[str, str]]) -> None:
        current = self.current()
        self.tree.blockSignals(True)  # rebuilding rows is not the user choosing one
        try:
            while header.childCount() > keep:
                header.removeChild(header.child(keep))
            for kind, value in rows:
                item = self._child(header, kind, value, value)
                if kind == "folder":
                    self._paint_folder(item, value)
            self.tree.setCurrentItem(self._find(*current) if current else None)
        finally:
            self.tree.blockSignals(False)

    def _paint_folder(self, item: QTreeWidgetItem, path: str) -> None:
        summary = self._summaries.get(path)
        state = self._states.get(path) or (folder_state(summary) if summary else "")
        item.setText(0, os.path.basename(path.rstrip("/\\")) or path)
        item.setText(1, state)
        item.setToolTip(0, f"{path}\n{state}")
        item.setToolTip(1, f"{path}\n{state}")

    # -- lookup and programmatic selection ---------------------------------------------

    def _find(self, kind: str, value: str) -> QTreeWidgetItem | None:
        header = {"folder": self.folders_header, "label": self.labels_header, "saved": self.saved_header}[kind]
        for i in range(header.childCount()):
            if header.child(i).data(0, _VALUE) == value:
                return header.child(i)
        return None

    def folder_item(self, path: str) -> QTreeWidgetItem | None:
        return self._find("folder", path)

    def current(self) -> tuple[str, str] | None:
        """The selected row as (kind, value), or None."""
        item = self.tree.currentItem()
        if item is None or item.data(0, _KIND) is None:
            return None
        return item.data(0, _KIND), item.data(0, _VALUE)

    def select(self, kind: str, value: str) -> None:
        """Highlight a row without emitting (the main window already acted on it)."""
        self.tree.blockSignals(True)
        self.tree.setCurrentItem(self._find(kind, value))
        self.tree.blockSignals(False)

    def clear_selection(self) -> None:
        """Remove the highlight without emitting, e.g. while a typed search is shown."""
        self.tree.blockSignals(True)
        self.tree.setCurrentItem(None)
        self.tree.clearSelection()
        self.tree.blockSignals(False)

    # -- reactions -------------------------------------------------------------------

    def _emit_for(self, item: QTreeWidgetItem | None) -> None:
        if item is None:
            return
        kind, value = item.data(0, _KIND), item.data(0, _VALUE)
        signal = {"folder": self.folder_selected, "label": self.label_selected,
                  "saved": self.saved_search_selected}.get(kind)
        if signal is not None:
            signal.emit(value)

    def context_menu_for(self, item: QTreeWidgetItem | None) -> QMenu | None:
        """The menu a right-click on ``item`` opens (built separately so tests can trigger it)."""
        if item is None:
            return None
        kind, value = item.data(0, _KIND), item.data(0, _VALUE)
        menu = QMenu(self)
        if kind == "folder" and value:
            action = menu.addAction(REMOVE_FOLDER_TEXT)
            action.triggered.connect(lambda: self.remove_folder_requested.emit(value))
        elif kind == "saved":
            action = menu.addAction(REMOVE_SAVED_TEXT)
            action.triggered.connect(lambda: self.remove_saved_search_requested.emit(value))
        elif item is self.folders_header or kind == "folder":
            menu.addAction("Add folder…").triggered.connect(self.add_folder_requested)
        elif item is self.labels_header or kind == "label":
            which = value if kind == "label" else ""
            review = f"Review '{which}'…" if which else "Review labels…"
            menu.addAction(review).triggered.connect(lambda: self.review_labels_requested.emit(which))
            edit = f"Edit '{which}'…" if which else "Edit labels…"
            menu.addAction(edit).triggered.connect(lambda: self.edit_labels_requested.emit(which))
        else:
            menu.deleteLater()
            return None
        return menu

    def _on_context_menu(self, pos: QPoint) -> None:
        menu = self.context_menu_for(self.tree.itemAt(pos))
        if menu is not None:
            menu.exec(self.tree.viewport().mapToGlobal(pos))
            menu.deleteLater()
