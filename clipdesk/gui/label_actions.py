"""The main window's label features: review queue, label editor, XMP export, yes/no answers.

Kept out of main_window.py, which only adds the menu entries; this wires the
sidebar's label menu, the detail panel's yes/no links and the controller's
feedback signals, and opens the dialogs (non-modal, deleted on close).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt

from clipdesk.gui.errors import show_error
from clipdesk.gui.label_editor import LabelEditor
from clipdesk.gui.panels.review_panel import ReviewDialog
from clipdesk.gui.xmp_export import XmpExport, confirm, summary


class LabelActions(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.controller = controller = window.controller
        self.review_dialog: ReviewDialog | None = None
        self.label_editor: LabelEditor | None = None
        self.xmp_export: XmpExport | None = None
        window.sidebar.review_labels_requested.connect(self.review)
        window.sidebar.edit_labels_requested.connect(self.edit)
        window.detail.feedback_requested.connect(controller.set_feedback)
        controller.feedback_saved.connect(self._on_feedback_saved)
        controller.feedback_failed.connect(lambda exc: show_error(window, exc))

    def review(self, label: str = "") -> ReviewDialog:
        """The review queue; ``label`` limits it to one label."""
        names = sorted(lab.name for lab in self.controller.vocabulary().labels)
        dialog = ReviewDialog(self.controller, names, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if label in names:
            dialog.label_filter.setCurrentText(label)  # reloads
        else:
            dialog.reload()
        dialog.show()
        self.review_dialog = dialog
        return dialog

    def edit(self, name: str = "") -> LabelEditor:
        editor = LabelEditor(self.controller.library.root, self.window)
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        editor.relabel_requested.connect(self.controller.run_labels)
        if name:
            editor.select(name)
        editor.show()
        self.label_editor = editor
        return editor

    def export_xmp(self) -> None:
        if confirm(self.window):
            self.xmp_export = XmpExport(self.controller, self.window)
            self.xmp_export.finished.connect(lambda report: self.window.status_label.setText(summary(report)))

    def _on_feedback_saved(self, photo_id: int, _label: str, _accepted: bool) -> None:
        details = self.window.detail.details
        if details is not None and details.id == photo_id:
            self.window._show_details(photo_id)  # noqa: SLF001 - the yes/no links go, a rejected label disappears
