"""Small pages and dialogs of the main window: first-run drop zone, the
"no good matches" state, the full-size preview, the scan errors list."""

from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import select

from clipdesk.gui.lanes import Lane, TaskManager, default_tasks
from clipdesk.store.models import ScanError


class DropZone(QWidget):
    """What a first launch shows: what to do, in one sentence, and a button."""

    add_folder_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        title = QLabel("<h2>Drop your photo folders here</h2>", alignment=Qt.AlignCenter)
        text = QLabel(
            "clipdesk indexes them in the background, then you can search by what the photos show "
            "(\u201cdog on a beach\u201d, \u201creceipt\u201d) or find photos like one you have.\n"
            "Your photos are only read, never changed.",
            alignment=Qt.AlignCenter, wordWrap=True,
        )
        button = QPushButton("Add folder…")
        button.clicked.connect(self.add_folder_requested)
        for w in (title, text):
            layout.addWidget(w)
        layout.addWidget(button, 0, Qt.AlignCenter)
        layout.addStretch(2)
        self.setObjectName("dropZone")
        self.setStyleSheet("QWidget#dropZone { border: 2px dashed palette(mid); border-radius: 12px; }")


class NoMatchPage(QWidget):
    """The explicit "no good matches" state, instead of unrelated photos."""

    show_closest_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        self.message = QLabel(alignment=Qt.AlignCenter, wordWrap=True)
        self.button = QPushButton("Show the closest photos anyway")
        self.button.clicked.connect(self.show_closest_requested)
        layout.addWidget(self.message)
        layout.addWidget(self.button, 0, Qt.AlignCenter)
        layout.addStretch(2)

    def set_query(self, label: str, considered: int) -> None:
        self.message.setText(
            f"<h3>No good matches for \u201c{label}\u201d</h3>"
            f"None of the {considered:,} photos searched looks like it. Try other words, "
            "fewer filters, or a photo as the query."
        )


class PreviewDialog(QDialog):
    """Space: the photo as large as the screen allows. Esc or Space closes it.

    Decoded on the IO lane by the same reader as every other view (special files refused, the
    decompression-bomb limit, EXIF orientation).
    """

    def __init__(self, path: str, parent=None, tasks: TaskManager | None = None) -> None:
        super().__init__(parent)
        from clipdesk.gui.panels.detail_panel import load_preview

        self.setWindowTitle(os.path.basename(path))
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.image_label = QLabel("Loading…", alignment=Qt.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image_label)
        screen = (parent.screen() if parent is not None else self.screen()).availableGeometry().size()
        self._limit = QSize(int(screen.width() * 0.9), int(screen.height() * 0.9))
        self.resize(self._limit * 0.8)
        side = max(self._limit.width(), self._limit.height())
        self.task = (tasks or default_tasks()).run(
            Lane.IO, lambda: load_preview(path, side), self._loaded,
            lambda exc: self.image_label.setText(f"Cannot show this photo: {exc}"))
        self.finished.connect(lambda _code: self.task.cancel())

    def _loaded(self, image) -> None:
        pixmap = QPixmap.fromImage(image)
        if pixmap.width() > self._limit.width() or pixmap.height() > self._limit.height():
            pixmap = pixmap.scaled(self._limit, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        self.image_label.setPixmap(pixmap)
        self.resize(pixmap.size())

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key_Space, Qt.Key_Escape):
            self.close()
        else:
            super().keyPressEvent(event)


def scan_errors(library) -> list[tuple[str, str]]:
    """(path, reason) of every file that could not be indexed (a read, for the IO lane)."""
    with library.session() as s:
        return [tuple(r) for r in s.execute(select(ScanError.path, ScanError.reason).order_by(ScanError.path))]


class ErrorsDialog(QDialog):
    """Files that could not be indexed, with the reason for each (read on the IO lane)."""

    loaded = Signal()

    def __init__(self, library, parent=None, tasks: TaskManager | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Files that could not be indexed")
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["File", "Reason"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        layout = QVBoxLayout(self)
        self.note = QLabel("Reading…", wordWrap=True)
        layout.addWidget(self.note)
        layout.addWidget(self.table)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        layout.addWidget(close, 0, Qt.AlignRight)
        self.resize(800, 400)
        (tasks or default_tasks()).run(Lane.IO, lambda: scan_errors(library), self._show)

    def _show(self, rows: list[tuple[str, str]]) -> None:
        self.table.setRowCount(len(rows))
        for i, (path, reason) in enumerate(rows):
            self.table.setItem(i, 0, QTableWidgetItem(path))
            self.table.setItem(i, 1, QTableWidgetItem(reason))
        self.note.setText("No errors: every file was indexed." if not rows else (
            f"{len(rows)} files were skipped. They are retried at every scan; nothing was changed on disk."))
        self.loaded.emit()
