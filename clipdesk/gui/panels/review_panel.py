"""The review queue: confirm or reject the labels clipdesk is least sure of.

Uncertain decisions come first (``labels.review.review_queue``, computed on
the inference lane). Keys: A or Y accepts, R or N rejects, S or Space skips,
the arrows move. Answers are written by the controller's writer lane; after a
few yes and no answers for a label, *Relearn* re-runs labelling so that label
is decided by what it learned (no re-embedding), and the queue refreshes.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clipdesk.gui.thumbnails import ThumbnailLoader
from clipdesk.labels.review import ReviewItem
from clipdesk.thumbs import thumbnail_cache_dir

ALL_LABELS = "All labels"
_ITEM = Qt.ItemDataRole.UserRole
ACCEPT_KEYS = (Qt.Key.Key_A, Qt.Key.Key_Y)
REJECT_KEYS = (Qt.Key.Key_R, Qt.Key.Key_N)
SKIP_KEYS = (Qt.Key.Key_S, Qt.Key.Key_Space)


def describe(item: ReviewItem) -> str:
    verdict = "labelled" if item.proposed else "not labelled"
    return f"{item.label} — {verdict} ({item.score:.2f}, {abs(item.margin):.1f} from the line)"


class ReviewDialog(QDialog):
    """Non-modal: the main window stays usable while reviewing.

    Signals:
        answered(int, str, bool): photo id, label, accepted (already sent to the controller).
    """

    answered = Signal(int, str, bool)

    def __init__(self, controller, labels: list[str], parent: QWidget | None = None, limit: int = 200) -> None:
        super().__init__(parent)
        self.setWindowTitle("Review labels")
        self.controller = controller
        self.limit = limit
        self.answers = 0
        self._relearning = False
        self._generation = 0  # a reload makes earlier queue results stale
        self.loader = ThumbnailLoader(thumbnail_cache_dir(), size=256, parent=self)
        self.loader.loaded.connect(self._on_thumbnail)

        self.label_filter = QComboBox()
        self.label_filter.addItems([ALL_LABELS, *labels])
        self.label_filter.currentIndexChanged.connect(lambda _i: self.reload())
        self.list = QListWidget(iconSize=QSize(64, 64), uniformItemSizes=True)
        self.list.currentItemChanged.connect(lambda item, _prev: self._show(item))
        self.list.installEventFilter(self)
        self.preview = QLabel(alignment=Qt.AlignmentFlag.AlignCenter, minimumSize=QSize(256, 256))
        self.title = QLabel(wordWrap=True)
        self.evidence = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)
        self.status = QLabel()
        self.accept_button = QPushButton("Yes, it is (A)")
        self.reject_button = QPushButton("No, it is not (R)")
        self.skip_button = QPushButton("Skip (S)")
        self.relearn_button = QPushButton("Relearn", toolTip="Label the library again with what your answers taught")
        self.accept_button.clicked.connect(lambda: self.answer(True))
        self.reject_button.clicked.connect(lambda: self.answer(False))
        self.skip_button.clicked.connect(self.skip)
        self.relearn_button.clicked.connect(self.relearn)
        controller.labels_finished.connect(self._on_labels_finished)

        side = QVBoxLayout()
        side.addWidget(self.preview, 1)
        side.addWidget(self.title)
        side.addWidget(self.evidence)
        buttons = QHBoxLayout()
        for b in (self.accept_button, self.reject_button, self.skip_button):
            buttons.addWidget(b)
        side.addLayout(buttons)
        left = QVBoxLayout()
        left.addWidget(self.label_filter)
        left.addWidget(self.list, 1)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addLayout(side, 2)
        footer = QHBoxLayout()
        footer.addWidget(self.status, 1)
        footer.addWidget(self.relearn_button)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addLayout(footer)
        self.resize(900, 560)
        self._set_buttons()

    # -- the queue -----------------------------------------------------------------------

    def reload(self) -> None:
        label = self.label_filter.currentText()
        self.status.setText("Finding the labels clipdesk is least sure of…")
        self.list.clear()
        self._set_buttons()
        self._generation += 1
        generation = self._generation
        self.controller.review_queue(lambda items: self._on_items(items, generation),
                                     lambda exc: self._on_failed(exc, generation),
                                     limit=self.limit, label=None if label == ALL_LABELS else label)

    def _on_items(self, items: list[ReviewItem], generation: int) -> None:
        if generation != self._generation:
            return
        self.list.clear()
        for it in items:
            row = QListWidgetItem(describe(it))
            row.setData(_ITEM, it)
            row.setToolTip(it.path)
            self.list.addItem(row)
            self.loader.request(it.photo_id, it.path)
        self.list.setCurrentRow(0)
        self.list.setFocus()
        self._update_status()

    def _on_failed(self, exc: BaseException, generation: int) -> None:
        if generation == self._generation:
            self.status.setText(f"Could not build the review queue: {exc}")

    def current(self) -> ReviewItem | None:
        row = self.list.currentItem()
        return row.data(_ITEM) if row is not None else None

    def answer(self, accepted: bool) -> None:
        """Record yes/no for the current item, drop it and show the next."""
        item = self.current()
        if item is None:
            return
        self.controller.set_feedback(item.photo_id, item.label, accepted)
        self.answered.emit(item.photo_id, item.label, accepted)
        self.answers += 1
        row = self.list.currentRow()
        self.list.takeItem(row)
        self.list.setCurrentRow(min(row, self.list.count() - 1))
        self._update_status()

    def skip(self) -> None:
        if self.list.count():
            self.list.setCurrentRow((self.list.currentRow() + 1) % self.list.count())

    def relearn(self) -> None:
        """Label the library again: taught labels are re-decided by their probes, then the queue reloads."""
        self._relearning = True
        self.status.setText("Relearning from your answers…")
        self.controller.run_labels()

    def _on_labels_finished(self, _report) -> None:
        if self._relearning:
            self._relearning = False
            self.reload()

    # -- display ------------------------------------------------------------------------

    def _show(self, row: QListWidgetItem | None) -> None:
        self._set_buttons()
        item = row.data(_ITEM) if row is not None else None
        if item is None:
            self.title.setText("Nothing to review." if not self.list.count() else "")
            self.evidence.setText("")
            self.preview.setPixmap(QPixmap())
            return
        question = "Is this" if item.proposed else "Is this also"
        self.title.setText(f"{question} “{item.label}”?  {describe(item)}")
        self.evidence.setText("because: " + ", ".join(f"{d} {v:.2f}" for d, v in item.evidence[:5]))
        icon = row.icon()
        self.preview.setPixmap(icon.pixmap(256, 256) if not icon.isNull() else QPixmap())

    def _on_thumbnail(self, photo_id: int, image: QImage) -> None:
        pixmap = QPixmap.fromImage(image)
        for i in range(self.list.count()):
            row = self.list.item(i)
            if row.data(_ITEM).photo_id == photo_id:
                row.setIcon(QIcon(pixmap))
                if row is self.list.currentItem():
                    self.preview.setPixmap(pixmap)

    def _set_buttons(self) -> None:
        has = self.list.currentItem() is not None
        for b in (self.accept_button, self.reject_button, self.skip_button):
            b.setEnabled(has)

    def _update_status(self) -> None:
        self.status.setText(f"{self.list.count()} to review · {self.answers} answered this session. "
                            "A/Y yes · R/N no · S/Space skip · arrows move")

    # -- keys ---------------------------------------------------------------------------

    def _key(self, key) -> bool:
        if key in ACCEPT_KEYS:
            self.answer(True)
        elif key in REJECT_KEYS:
            self.answer(False)
        elif key in SKIP_KEYS:
            self.skip()
        else:
            return False
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # The list would otherwise eat letters for its type-ahead search.
        if event.type() == QEvent.Type.KeyPress and not event.modifiers() and self._key(event.key()):
            return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event) -> None:
        if event.modifiers() or not self._key(event.key()):
            super().keyPressEvent(event)

    def done(self, result: int) -> None:
        self._generation += 1  # a queue still being computed finds the dialog gone
        self.loader.shutdown()
        super().done(result)
