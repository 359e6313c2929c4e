"""Library ▸ Export labels to XMP sidecars: confirm, then write them in the background.

The core (``labels.export.export_sidecars``) does the work as a job on the IO
lane (so the status bar shows it too); this asks first, shows progress with a
Cancel button and reports.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QProgressDialog, QWidget

from clipdesk.gui.errors import show_error

CONFIRM_TITLE = "Export labels to XMP sidecars"
CONFIRM_TEXT = (
    "clipdesk will merge each labelled photo's labels (rejected ones left out) and caption into the "
    "sidecar file next to it, named like IMG_1.JPG.xmp, as keywords other photo tools read "
    "(dc:subject, lr:hierarchicalSubject).\n\n"
    "Everything other tools wrote there (edit history, ratings, tags, descriptions) is kept. "
    "The photos themselves are never opened for writing. Continue?"
)


def confirm(parent: QWidget) -> bool:
    answer = QMessageBox.question(parent, CONFIRM_TITLE, CONFIRM_TEXT,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                  QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes


class XmpExport(QObject):
    """One export run with its progress dialog; ``finished(report)`` at the end (also when cancelled)."""

    finished = Signal(object)  # labels.export.ExportReport

    def __init__(self, controller, parent: QWidget) -> None:
        super().__init__(parent)
        self._parent = parent
        self.progress = QProgressDialog("Writing XMP sidecars…", "Cancel", 0, 0, parent)
        self.progress.setWindowTitle(CONFIRM_TITLE)
        self.progress.setWindowModality(Qt.WindowModality.NonModal)
        self.progress.setMinimumDuration(300)  # a small library finishes before it would flash up
        self.job = controller.export_sidecars()
        controller.jobs.progress.connect(self._on_job_progress)
        controller.jobs.finished.connect(self._on_job_finished)
        controller.jobs.failed.connect(self._on_job_failed)
        self.progress.canceled.connect(lambda: controller.jobs.cancel(self.job))

    def _on_job_progress(self, job, status) -> None:
        if job is self.job:
            self._on_progress(status)

    def _on_job_finished(self, job, report) -> None:
        if job is self.job:
            self._on_result(report)

    def _on_job_failed(self, job, exc) -> None:
        if job is self.job:
            self._on_failed(exc)

    def _on_progress(self, status) -> None:
        self.progress.setMaximum(status.total)
        self.progress.setValue(status.done)
        self.progress.setLabelText(f"Writing XMP sidecars… {status.done:,} / {status.total:,}")

    def _on_result(self, report) -> None:
        self.progress.reset()
        self.progress.close()
        self.finished.emit(report)

    def _on_failed(self, exc: BaseException) -> None:
        self.progress.close()
        show_error(self._parent, exc)


def summary(report) -> str:
    verb = "Stopped after writing" if report.cancelled else "Wrote"
    text = f"{verb} {len(report.written):,} XMP sidecars; the photos were not modified."
    if report.skipped:
        text += f" Skipped {len(report.skipped):,} (e.g. {report.skipped[0]})."
    return text
