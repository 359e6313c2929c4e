"""Tools ▸ Tune for my library…: what searches use now, a tune with its before/after figures, and Revert.

The work is the core's (``clipdesk.tuning``), on the controller's lanes: the
status is read on the IO lane, the tune runs as a job on the inference lane
(the status bar shows its progress, Pause and Cancel), the revert runs on the
writer lane. The dialog only listens to the controller's signals, so closing
it while a tune runs is safe: Qt drops signals to a deleted receiver, and the
status bar still reports the outcome.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clipdesk.errors import ClipdeskError
from clipdesk.gui.errors import show_error
from clipdesk.tuning.run import TuneOptions

EXPLANATION = (
    "Tuning teaches similar-photo search this library's own photos: clipdesk makes edited copies of a sample "
    "of them (crops, rescales, colour changes, …) and trains a small layer on top of the model to find each "
    "photo from its copies. Text search is realigned to match and checked on photos kept out of training "
    "(and on coco_mini when it is at hand). The tuning is kept only if similar-photo search gets better on "
    "those held-out photos and text search gets no worse; otherwise nothing changes. Revert brings back "
    "exactly the search results of before, at any time."
)
SECTIONS = {"near_duplicates": "similar photos", "heldout_captions": "text search, held-out captions",
            "coco_mini": "text search, coco_mini"}  # the guard's sections, as the table names them
REVERT_TEXT = ("Go back to the base model's vectors? The tuned vectors and the tuning itself are removed; "
               "searches give exactly the results of before tuning.")


def summary(report) -> str:
    """One sentence on a ``tuning.run.TuneReport``: kept, rolled back or stopped (the status bar's text)."""
    if report.kept:
        return (f"Tuning kept: searches now use the tuned vectors ({report.written:,} written). "
                "Revert (Tools ▸ Tune for my library…) undoes it.")
    if report.cancelled and report.tuned_key:
        return (f"Stopped while writing the tuned vectors ({report.written:,} written): searches still use the "
                "base vectors. Tune again to continue.")
    if report.cancelled:
        return "Stopped before tuning finished: nothing changed, searches use the base vectors as before."
    return ("Tuning rolled back: it did not pass the check on held-out photos, so searches keep using the "
            "base vectors.")


def _details(report) -> str:
    s, lines = report.sizes, []
    if s.get("training_photos") is not None:
        lines.append(f"Trained on {s['training_photos']:,} photos × {s.get('views_per_photo', 0)} views and "
                     f"{s.get('text_pairs', 0):,} caption/label texts; checked on {s.get('heldout_photos', 0):,} "
                     f"held-out photos ({s.get('heldout_views', 0):,} edited copies).")
    if report.seconds:
        lines.append("Took " + ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items()) + ".")
    return "\n".join(lines)


class TuneDialog(QDialog):
    """Non-modal; ``loaded`` when the status is shown, ``outcome_shown(text)`` when a run's result is."""

    loaded = Signal()
    outcome_shown = Signal(str)

    def __init__(self, controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("Tune for my library")
        self.status: dict | None = None
        self.job = None  # the tune job this dialog waits for
        self._has_result = False  # figures of a run finished while open: the status read does not replace them

        self.now_label = QLabel("Checking what searches use…", wordWrap=True)
        explanation = QLabel(EXPLANATION, wordWrap=True)
        defaults = TuneOptions()
        self.photos_spin = self._spin(8, 100_000, defaults.photos, "Photos whose edited copies are trained on")
        self.views_spin = self._spin(1, 32, defaults.views, "Edited copies made of each of those photos")
        self.epochs_spin = self._spin(1, 1000, defaults.epochs, "Passes over the training data, per layer")
        form = QFormLayout()
        form.addRow("Photos:", self.photos_spin)
        form.addRow("Copies per photo:", self.views_spin)
        form.addRow("Epochs:", self.epochs_spin)

        self.outcome_label = QLabel(wordWrap=True)
        self.outcome_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, 3, visible=False)
        self.table.setHorizontalHeaderLabels(["Measure", "Before", "After"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.reasons_label = QLabel(wordWrap=True)
        self.progress_label = QLabel()

        self.tune_button = QPushButton("Tune")
        self.revert_button = QPushButton("Revert", enabled=False)
        close = QPushButton("Close")
        self.tune_button.clicked.connect(self.tune)
        self.revert_button.clicked.connect(self.revert)
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress_label, 1)
        for b in (self.tune_button, self.revert_button, close):
            buttons.addWidget(b)

        layout = QVBoxLayout(self)
        for w in (self.now_label, explanation):
            layout.addWidget(w)
        layout.addLayout(form)
        for w in (self.outcome_label, self.table, self.reasons_label):
            layout.addWidget(w)
        layout.addStretch(1)  # before a run: the room goes below the form, not between the labels
        layout.addLayout(buttons)
        self.resize(640, 560)

        # Bound methods, not lambdas: Qt disconnects them when this dialog is deleted.
        controller.tune_finished.connect(self._on_tune_finished)
        controller.tune_failed.connect(self._on_tune_failed)
        controller.tuning_reverted.connect(self._on_reverted)
        controller.jobs.progress.connect(self._on_job_progress)
        controller.jobs.changed.connect(self._on_jobs_changed)
        running = controller.jobs.jobs("tune")  # reopened while a tune runs: wait for that one
        if running:
            self._waiting_for(running[0])
        self.reload()

    @staticmethod
    def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
        spin = QSpinBox(minimum=low, maximum=high, toolTip=tip)
        spin.setValue(value)
        return spin

    # -- actions --------------------------------------------------------------------

    def reload(self) -> None:
        self.controller.tuning_status(self._show_status, self._on_status_failed)

    def options(self) -> TuneOptions:
        return TuneOptions(photos=self.photos_spin.value(), views=self.views_spin.value(),
                           epochs=self.epochs_spin.value())

    def tune(self) -> None:
        self._has_result = False
        self._show_outcome("", None)
        self._waiting_for(self.controller.tune(self.options()))

    def revert(self) -> None:
        answer = QMessageBox.question(self, "Revert the tuning", REVERT_TEXT,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.controller.revert_tuning(self._on_revert_failed)
        except ClipdeskError as exc:
            self._show_outcome(str(exc), None, error=True)
            return
        self.revert_button.setEnabled(False)
        self.progress_label.setText("Reverting…")

    # -- results --------------------------------------------------------------------

    def _waiting_for(self, job) -> None:
        self.job = job
        self.tune_button.setEnabled(False)
        self.revert_button.setEnabled(False)
        ahead = self.controller.current_job not in (None, job)
        self.progress_label.setText("Waiting for the running job…" if ahead else "Tuning…")

    def _done_waiting(self) -> None:
        self.job = None
        self.tune_button.setEnabled(True)
        self.progress_label.setText("")

    def _on_job_progress(self, job, st) -> None:
        if job is self.job:
            self.progress_label.setText(f"Tuning: {st.phase} {st.done:,} / {st.total:,}" if st.total
                                        else f"Tuning: {st.phase}…")

    def _on_jobs_changed(self) -> None:
        job = self.job  # dropped from the queue before it started (a report is emitted only once it ran)
        if job is not None and job.state == "cancelled" and job not in self.controller.jobs.jobs():
            self._done_waiting()
            self._show_outcome("Stopped before tuning started: nothing changed.", None)

    def _on_tune_finished(self, report) -> None:
        self._done_waiting()
        self._has_result = True
        figures = (report.before, report.after) if report.before else None
        self._show_outcome(summary(report), figures, report.reasons, _details(report))
        self.reload()

    def _on_tune_failed(self, exc: BaseException) -> None:
        self._done_waiting()
        self.reload()
        if isinstance(exc, ClipdeskError):  # e.g. too few photos: said here; the window shows no second box
            self._show_outcome(str(exc), None, error=True)
        else:
            self._show_outcome("Tuning failed: nothing changed.", None, error=True)
            show_error(self, exc)

    def _on_reverted(self, result: dict) -> None:
        self.progress_label.setText("")
        self._has_result = True
        text = (f"Reverted: {result['removed_vectors']:,} tuned vectors removed; searches use the base vectors again."
                if result["reverted"] or result["removed_vectors"] else "No tuning to revert: the base vectors are in use.")
        if result.get("without_base_vectors"):
            text += (f" {result['without_base_vectors']:,} photos have no base vector: add their folder again to "
                     "embed them.")
        self._show_outcome(text, None)
        self.reload()

    def _on_revert_failed(self, exc: BaseException) -> None:
        self.progress_label.setText("")
        self.reload()
        show_error(self, exc)

    def _on_status_failed(self, exc: BaseException) -> None:
        self.now_label.setText(f"Cannot read the tuning state: {exc}")
        self.loaded.emit()

    def _show_status(self, st: dict) -> None:
        self.status = st
        model = self.controller.engine.spec
        if st["active"]:
            stale = f"; {st['stale']:,} photos still lack a tuned vector" if st.get("stale") else ""
            self.now_label.setText(f"<b>Searching tuned vectors</b> of {model.name}: {st['tuned_vectors']:,} tuned "
                                   f"vectors, {st['base_vectors']:,} base vectors kept for Revert{stale}.")
        else:
            self.now_label.setText(f"<b>No tuning:</b> searches use the base vectors of {model.name}.")
        if st.get("pending"):
            self.now_label.setText(self.now_label.text() + " A tuning stopped while writing its vectors: Tune "
                                   "continues it.")
        if model.random_init:
            self.now_label.setText(self.now_label.text() + " (Test-only random model: its figures mean nothing.)")
        self.revert_button.setEnabled(self.job is None and bool(st["active"] or st.get("pending")))
        last = st.get("last") or {}
        if not self._has_result and last.get("outcome") in ("kept", "rolled back"):
            active = last.get("outcome") == "kept" and st["active"]
            head = ("Searching the result of the last tuning" if active
                    else f"Last tuning: {last['outcome']}") + f" ({str(last.get('when', ''))[:16]})."
            self._show_outcome(head, (last.get("before") or {}, last.get("after") or {}), last.get("reasons"))
        self.loaded.emit()

    def _show_outcome(self, text: str, figures, reasons=None, details: str = "", error: bool = False) -> None:
        self.outcome_label.setText(text)
        self.outcome_label.setStyleSheet("color: #b00020;" if error else "font-weight: bold;")
        self.table.setRowCount(0)
        before, after = figures or ({}, {})
        for section, values in before.items():
            for metric, value in values.items():
                if metric == "n" or metric not in after.get(section, {}):
                    continue
                row = self.table.rowCount()
                self.table.insertRow(row)
                name = SECTIONS.get(section, section.replace("_", " "))
                cells = [f"{name} {metric} ({values.get('n', '?')} queries)", f"{value:.3f}",
                         f"{after[section][metric]:.3f}"]
                for col, cell in enumerate(cells):
                    self.table.setItem(row, col, QTableWidgetItem(cell))
        self.table.setVisible(self.table.rowCount() > 0)
        lines = [f"• {r}" for r in reasons or []] + ([details] if details else [])
        self.reasons_label.setText("\n".join(lines))
        if text:
            self.outcome_shown.emit(text)

    def figures(self) -> dict[str, tuple[str, str]]:
        """The table as shown: measure -> (before, after) (tests, screenshots)."""
        return {self.table.item(r, 0).text(): (self.table.item(r, 1).text(), self.table.item(r, 2).text())
                for r in range(self.table.rowCount())}
