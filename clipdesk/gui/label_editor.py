"""The label editor: add, change, hide and remove labels (the library's labels.yaml).

Shipped labels are never written; editing one stores an override in the
library's file, which *Revert* removes. Saving never re-embeds photos: the
next labelling run (offered right here) encodes the new descriptors. File
work is a few small YAML reads and one write, fast enough for the GUI thread.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clipdesk.labels.vocab import VocabularyError
from clipdesk.labels.vocab_edit import LabelEntry, list_labels, normalise, remove_label, restore_label, save_label

_ENTRY = Qt.ItemDataRole.UserRole
STATE_TEXT = {"shipped": "", "user": "  (yours)", "edited": "  (edited)", "hidden": "  (hidden)"}
REMOVE_TEXT = {"shipped": "Hide", "user": "Delete", "edited": "Revert to shipped", "hidden": "Show again"}


class LabelEditor(QDialog):
    """Signals:
        vocabulary_changed(): a label was saved, removed or restored.
        relabel_requested(): the user asked to label the library now.
    """

    vocabulary_changed = Signal()
    relabel_requested = Signal()

    def __init__(self, library_root, parent: QWidget | None = None, shipped=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Labels")
        self.root = library_root
        self.shipped = shipped
        self._editing: LabelEntry | None = None

        self.filter = QLineEdit(placeholderText="Filter labels…", clearButtonEnabled=True)
        self.filter.textChanged.connect(self._apply_filter)
        self.list = QListWidget()
        self.list.currentItemChanged.connect(lambda item, _prev: self._load(item))
        self.new_button = QPushButton("New label")
        self.new_button.clicked.connect(self.new_label)

        self.name = QLineEdit(placeholderText="e.g. kayak")
        self.parent_edit = QLineEdit(placeholderText="optional, e.g. vehicle (gives vehicle/kayak)")
        self.synonyms = QLineEdit(placeholderText="optional, comma separated: canoe, paddle boat")
        self.descriptors = QPlainTextEdit(placeholderText="One short visual phrase per line (3 to 8 work best):\n"
                                                          "a narrow boat on water\na person holding a double paddle")
        self.problems = QLabel(wordWrap=True, objectName="problems", visible=False)
        self.problems.setStyleSheet("QLabel#problems { color: #b00020; }")
        self.message = QLabel(wordWrap=True)
        self.save_button = QPushButton("Save", default=True)
        self.save_button.clicked.connect(self.save)
        self.remove_button = QPushButton("Delete")
        self.remove_button.clicked.connect(self.remove)
        self.relabel_button = QPushButton("Label photos now", visible=False,
                                          toolTip="Re-decide labels with the changed vocabulary (photos are not re-embedded)")
        self.relabel_button.clicked.connect(self._relabel)

        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Parent", self.parent_edit)
        form.addRow("Synonyms", self.synonyms)
        form.addRow("Descriptors", self.descriptors)
        actions = QHBoxLayout()
        actions.addWidget(self.save_button)
        actions.addWidget(self.remove_button)
        actions.addStretch(1)
        actions.addWidget(self.relabel_button)
        right = QVBoxLayout()
        right.addLayout(form, 1)
        right.addWidget(self.problems)
        right.addWidget(self.message)
        right.addLayout(actions)
        left = QVBoxLayout()
        left.addWidget(self.filter)
        left.addWidget(self.list, 1)
        left.addWidget(self.new_button)
        body = QHBoxLayout(self)
        body.addLayout(left, 1)
        body.addLayout(right, 2)
        self.resize(820, 520)
        self.refresh()
        self.new_label()

    # -- the list -------------------------------------------------------------------------

    def refresh(self, select: str | None = None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for entry in list_labels(self.root, self.shipped):
            row = QListWidgetItem(entry.label.path + STATE_TEXT[entry.state])
            row.setData(_ENTRY, entry)
            if entry.state == "hidden":
                row.setForeground(self.palette().placeholderText())
            self.list.addItem(row)
            if entry.label.name == select:
                self.list.setCurrentItem(row)
        self.list.blockSignals(False)
        self._apply_filter(self.filter.text())

    def _apply_filter(self, text: str) -> None:
        text = text.strip().lower()
        for i in range(self.list.count()):
            row = self.list.item(i)
            row.setHidden(bool(text) and text not in row.text().lower())

    def entry(self, name: str) -> LabelEntry | None:
        for i in range(self.list.count()):
            entry = self.list.item(i).data(_ENTRY)
            if entry.label.name == name:
                return entry
        return None

    def select(self, name: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(_ENTRY).label.name == name:
                self.list.setCurrentRow(i)

    # -- the form -------------------------------------------------------------------------

    def new_label(self) -> None:
        self.list.setCurrentItem(None)
        self._fill(None)
        self.name.setFocus()

    def _load(self, row: QListWidgetItem | None) -> None:
        self._fill(row.data(_ENTRY) if row is not None else None)

    def _fill(self, entry: LabelEntry | None) -> None:
        self._editing = entry
        label = entry.label if entry else None
        self.name.setText(label.name if label else "")
        self.parent_edit.setText((label.parent or "") if label else "")
        self.synonyms.setText(", ".join(label.synonyms) if label else "")
        self.descriptors.setPlainText("\n".join(label.descriptors) if label else "")
        self.problems.setVisible(False)
        self.save_button.setText("Save changes" if entry else "Add label")
        self.remove_button.setVisible(entry is not None)
        if entry is not None:
            self.remove_button.setText(REMOVE_TEXT[entry.state])
        for w in (self.name, self.parent_edit, self.synonyms, self.descriptors, self.save_button):
            w.setEnabled(entry is None or entry.state != "hidden")

    def save(self) -> bool:
        label = normalise(self.name.text(), self.descriptors.toPlainText().splitlines(),
                          self.synonyms.text().split(","), self.parent_edit.text())
        replacing = self._editing.label.name if self._editing else None
        try:
            save_label(self.root, label, replacing, self.shipped)
        except VocabularyError as exc:
            self.problems.setText(str(exc))
            self.problems.setVisible(True)
            return False
        verb = "Saved" if replacing else "Added"
        self._changed(f"{verb} '{label.path}'.", select=label.name)
        return True

    def remove(self) -> None:
        if self._editing is None:
            return
        name = self._editing.label.name
        try:
            if self._editing.state == "hidden":
                restore_label(self.root, name)
                done = "shown again"
            else:
                done = remove_label(self.root, name, self.shipped)
        except VocabularyError as exc:
            self.problems.setText(str(exc))
            self.problems.setVisible(True)
            return
        self._changed(f"'{name}' {done}.", select=name if done != "deleted" else None)

    def _changed(self, text: str, select: str | None) -> None:
        self.refresh(select)
        if self.list.currentItem() is None:
            self.new_label()
        else:
            self._load(self.list.currentItem())
        self.message.setText(f"{text} The next labelling run uses it; photos are not re-embedded.")
        self.relabel_button.setVisible(True)
        self.vocabulary_changed.emit()

    def _relabel(self) -> None:
        self.relabel_requested.emit()
        self.relabel_button.setVisible(False)
        self.message.setText("Labelling in the background (see the status bar).")
