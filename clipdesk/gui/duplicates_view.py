"""Tools ▸ Find duplicates…: groups by tier with thumbnails, evidence and the keeper; trash (asked first) and undo.

All the work is the core's (``clipdesk.duplicates``), on the controller's
lanes: hashing and grouping run as a job on the IO lane (the status bar shows
progress and Cancel), the thumbnails are decoded on the IO lane, the moves
to the trash and the undo are jobs on the IO lane whose database writes go
through the writer lane. The GUI thread touches neither the database nor a
photo file.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipdesk.duplicates.grouping import evidence_words
from clipdesk.gui.errors import show_error
from clipdesk.gui.lanes import Job, Lane

THUMB = 64
MAX_THUMBS = 400  # the first groups' thumbnails; the rest show their paths only


def _thumbnails(paths: list[str]) -> dict[str, QImage]:
    """Small upright previews (on the IO lane); a file that cannot be read just gets none."""
    from clipdesk.imageio import ImageReadError, read_preview

    out = {}
    for path in paths[:MAX_THUMBS]:
        try:
            im = read_preview(path, THUMB).convert("RGBA")
        except (ImageReadError, OSError):
            continue
        out[path] = QImage(im.tobytes(), im.width, im.height, QImage.Format.Format_RGBA8888).copy()
    return out


class DuplicatesView(QDialog):
    """Non-modal; ``groups_shown`` after each search, ``trashed``/``restored`` after a move or an undo."""

    groups_shown = Signal(int)
    trashed = Signal(object)  # duplicates.trash.TrashReport
    restored = Signal(object)  # duplicates.trash.UndoReport

    def __init__(self, controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.groups: list = []
        self.setWindowTitle("Find duplicates")
        self.resize(900, 600)
        self.tier = QComboBox()
        self.tier.addItems(["all tiers", "exact", "near", "similar"])
        self.find_button = QPushButton("Find duplicates")
        self.trash_button = QPushButton("Move the others to trash…")
        self.undo_button = QPushButton("Undo last move to trash")
        self.status = QLabel("Exact copies, edited copies (near) and bursts (similar). Nothing is moved without "
                             "asking, and moves can be undone.", wordWrap=True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Photo", "Evidence"])
        self.tree.setColumnWidth(0, 520)  # room for a thumbnail and the path; the evidence is short
        self.tree.setIconSize(QPixmap(THUMB, THUMB).size())
        top = QHBoxLayout()
        for w in (self.tier, self.find_button, self.trash_button, self.undo_button):
            top.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.tree, 1)
        self.trash_button.setEnabled(False)
        self.find_button.clicked.connect(self.find)
        self.trash_button.clicked.connect(self.trash_selected)
        self.undo_button.clicked.connect(self.undo)

    # The question asked before anything moves; tests replace it.
    def confirm(self, count: int, groups: int) -> bool:
        answer = QMessageBox.question(
            self, "Move to trash",
            f"Move {count} photos of {groups} groups to the system trash? Each group's keeper stays. "
            "You can undo this (Tools ▸ Undo move to trash).")
        return answer == QMessageBox.StandardButton.Yes

    def find(self) -> None:
        from clipdesk.duplicates.run import find_duplicates

        library, engine = self.controller.library, self.controller.engine
        tier = None if self.tier.currentIndex() == 0 else self.tier.currentText()
        use_cosine = not engine.spec.random_init  # the test model's vectors mean nothing

        def job(progress, cancel):  # the engine's key may hash its checkpoint: off the GUI thread too
            return find_duplicates(library, engine.key, use_cosine, tier, progress=progress, cancel=cancel)

        self.find_button.setEnabled(False)
        self.status.setText("Hashing new photos and grouping…")
        self.controller.submit(Job("duplicates", "Finding duplicates", job, Lane.IO, on_done=self._show,
                                   on_failed=self._failed))

    def _failed(self, exc) -> None:
        self.find_button.setEnabled(True)
        show_error(self, exc)

    def _show(self, result) -> None:
        self.find_button.setEnabled(True)
        self.groups = result.groups
        self.tree.clear()
        for n, g in enumerate(self.groups, 1):
            top = QTreeWidgetItem([f"#{n} {g.tier}: keep {g.keeper_path}", g.keeper_reason])
            top.setData(0, Qt.ItemDataRole.UserRole, n - 1)
            # A burst's shots are not copies: ticked only by the user.
            top.setCheckState(0, Qt.CheckState.Checked if g.tier != "similar" else Qt.CheckState.Unchecked)
            for m in g.members:
                words = "keeper" if m.photo_id == g.keeper else evidence_words(m.evidence)
                child = QTreeWidgetItem([m.path or str(m.photo_id), words])
                child.setToolTip(0, m.path or str(m.photo_id))
                child.setData(0, Qt.ItemDataRole.UserRole + 1, m.path)
                top.addChild(child)
            self.tree.addTopLevelItem(top)
        self.tree.expandAll()
        note = "" if result.used_embeddings else " (hashes and capture times only: no meaningful embeddings)"
        self.status.setText(f"{len(self.groups)} groups{note}. Ticked groups lose all but their keeper; bursts "
                            "(similar) are left unticked.")
        self.trash_button.setEnabled(bool(self.groups))
        paths = [m.path for g in self.groups for m in g.members if m.path]
        self.controller.read(lambda: _thumbnails(paths), self._set_thumbnails)
        self.groups_shown.emit(len(self.groups))

    def _set_thumbnails(self, images: dict) -> None:
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                child = top.child(j)
                image = images.get(child.data(0, Qt.ItemDataRole.UserRole + 1))
                if image is not None:
                    child.setIcon(0, QIcon(QPixmap.fromImage(image)))

    def chosen_plan(self) -> tuple[list[tuple[int, int]], int]:
        """(photo id, keeper id) of the non-keepers of the ticked groups, and how many groups."""
        plan, groups = [], 0
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top.checkState(0) != Qt.CheckState.Checked:
                continue
            g = self.groups[top.data(0, Qt.ItemDataRole.UserRole)]
            plan += [(m.photo_id, g.keeper) for m in g.members if m.photo_id != g.keeper]
            groups += 1
        return plan, groups

    def trash_selected(self) -> None:
        from clipdesk.duplicates.trash import move_to_trash

        plan, groups = self.chosen_plan()
        if not plan or not self.confirm(len(plan), groups):
            self.status.setText("Nothing moved.")
            return
        library = self.controller.library
        self.trash_button.setEnabled(False)
        self.controller.submit(Job("trash", "Moving duplicates to the trash",
                                   lambda progress, cancel: move_to_trash(library, plan), Lane.IO,
                                   on_done=self._trashed, on_failed=self._failed))

    def _trashed(self, report) -> None:
        failed = f"; {len(report.failed)} could not be moved" if report.failed else ""
        self.status.setText(f"Moved {len(report.moved)} photos to the trash{failed}. Undo brings them back.")
        self.tree.clear()
        self.controller.library_changed.emit()
        self.trashed.emit(report)

    def undo(self) -> None:
        from clipdesk.duplicates.trash import undo

        library = self.controller.library
        self.controller.submit(Job("undo-trash", "Restoring from the trash", lambda progress, cancel: undo(library),
                                   Lane.IO, on_done=self._restored, on_failed=self._failed))

    def _restored(self, report) -> None:
        text = report.message or f"Restored {len(report.restored)} photos."
        if report.failed:
            text += f" {len(report.failed)} could not be restored: {report.failed[0][1]}."
        self.status.setText(text)
        self.controller.library_changed.emit()
        self.restored.emit(report)


def open_duplicates(window) -> DuplicatesView:
    """Tools ▸ Find duplicates…: one view at a time, deleted on close."""
    view = getattr(window, "_duplicates_view", None)
    try:
        if view is not None and view.isVisible():
            view.raise_()
            return view
    except RuntimeError:  # its C++ side is gone (closed)
        pass
    view = DuplicatesView(window.controller, window)
    view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    window._duplicates_view = view
    view.show()
    return view


def undo_last_trash(window) -> DuplicatesView:
    """Tools ▸ Undo move to trash: the view, running its undo."""
    view = open_duplicates(window)
    view.undo()
    return view
