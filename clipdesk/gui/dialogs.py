"""Small pages and dialogs of the main window: first-run drop zone, the
"no good matches" state, the full-size preview, the scan errors list."""

from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImageReader, QPixmap
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

from clipdesk.gui.workers import FunctionWorker
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


def _load_scaled(path: str, limit: QSize):
    reader = QImageReader(path)
    reader.setAutoTransform(True)  # EXIF orientation
    size = reader.size()
    if size.isValid() and (size.width() > limit.width() or size.height() > limit.height()):
        reader.setScaledSize(size.scaled(limit, Qt.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        raise OSError(reader.errorString())
    return image


class PreviewDialog(QDialog):
    """Space: the photo as large as the screen allows. Esc or Space closes it."""

    def __init__(self, path: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(os.path.basename(path))
        self.setAttribute(Qt.WA_DeleteOnClose)
        self.image_label = QLabel("Loading…", alignment=Qt.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image_label)
        screen = (parent.screen() if parent is not None else self.screen()).availableGeometry().size()
        limit = QSize(int(screen.width() * 0.9), int(screen.height() * 0.9))
        self.resize(limit * 0.8)
        self.worker = FunctionWorker(lambda: _load_scaled(path, limit))
        self.worker.signals.result.connect(self._loaded)
        self.worker.signals.failed.connect(lambda exc: self.image_label.setText(f"Cannot show this photo: {exc}"))
        QThreadPool.globalInstance().start(self.worker)

    def _loaded(self, image) -> None:
        pixmap = QPixmap.fromImage(image)
        self.image_label.setPixmap(pixmap)
        self.resize(pixmap.size())

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key_Space, Qt.Key_Escape):
            self.close()
        else:
            super().keyPressEvent(event)


class ErrorsDialog(QDialog):
    """Files that could not be indexed, with the reason for each."""

    def __init__(self, library, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Files that could not be indexed")
        with library.session() as s:
            rows = s.execute(select(ScanError.path, ScanError.reason).order_by(ScanError.path)).all()
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["File", "Reason"])
        for i, (path, reason) in enumerate(rows):
            self.table.setItem(i, 0, QTableWidgetItem(path))
            self.table.setItem(i, 1, QTableWidgetItem(reason))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        layout = QVBoxLayout(self)
        note = "No errors: every file was indexed." if not rows else (
            f"{len(rows)} files were skipped. They are retried at every scan; nothing was changed on disk.")
        layout.addWidget(QLabel(note, wordWrap=True))
        layout.addWidget(self.table)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        layout.addWidget(close, 0, Qt.AlignRight)
        self.resize(800, 400)
