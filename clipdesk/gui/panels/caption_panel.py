"""The caption panel: the selected photo's captions, a hand edit, and captioning jobs.

Reads run on the IO lane, the hand edit on the writer lane, and captioning
is a job in the controller's queue, on the inference lane (one model at a
time, after any indexing already queued): it shows in the status bar as well
as here, with the same pause and cancel. The library job is resumable by
construction: run it again and it continues where it stopped.
A hand-written caption is its own row, which captioning never writes.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clipdesk.captions.base import BACKENDS, DEFAULT_CANDIDATES
from clipdesk.captions.store import CaptionInfo, photo_captions, set_user_caption
from clipdesk.gui.errors import show_error
from clipdesk.gui.lanes import Job, Lane

NO_PHOTO = "Select a photo to see its caption"


def describe(info: CaptionInfo) -> str:
    """One caption as the panel lists it."""
    if info.source == "user":
        return f"✎ {info.text}"
    confidence = "" if info.score is None else f" — confidence {info.score:.2f}"
    return f"{info.text}{confidence}"


class CaptionPanel(QWidget):
    """Shows and edits one photo's captions; runs captioning in the background."""

    captions_changed = Signal(int)  # photo id whose captions were (re)written; -1: many
    job_finished = Signal(object)  # captions.run.CaptionReport

    def __init__(self, controller, selected_ids: Callable[[], list[int]] = list,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.selected_ids = selected_ids
        self.caption_model: str | None = None  # CoCa preset; None: the default
        self.max_len: int | None = None  # None: the backend's default
        self._photo_id: int | None = None
        self._generation = 0
        self._captioners: dict[tuple, object] = {}
        self._job: Job | None = None
        self._build()
        # Bound methods, not lambdas: Qt disconnects them when this panel goes.
        controller.jobs.started.connect(self._on_job_started)
        controller.jobs.progress.connect(self._on_job_progress)
        controller.jobs.finished.connect(self._on_job_finished)
        controller.jobs.failed.connect(self._on_job_failed)
        self.show_photo(None)
        app = QCoreApplication.instance()
        if app is not None:  # quitting stops a job after its batch; the next run resumes it
            app.aboutToQuit.connect(self.cancel)

    def _build(self) -> None:
        self.auto_label = QLabel(wordWrap=True)
        self.model_label = QLabel(wordWrap=True)
        self.model_label.setStyleSheet("color: palette(mid);")
        self.edit = QLineEdit(placeholderText="Write your own caption (kept forever; empty removes it)")
        self.save_button = QPushButton("Save")
        self.backend = QComboBox()
        self.backend.addItems(list(BACKENDS))
        self.backend.setToolTip("coca: a captioning model reads each photo; "
                                "decoder: the text-only decoder reads stored embeddings (train it first)")
        self.caption_selected_button = QPushButton("Caption selected")
        self.caption_library_button = QPushButton("Caption library")
        self.progress = QProgressBar(visible=False, textVisible=False)
        self.pause_button = QPushButton("Pause", visible=False, checkable=True)
        self.cancel_button = QPushButton("Cancel", visible=False)
        self.status = QLabel(wordWrap=True)

        edit_row = QHBoxLayout()
        edit_row.addWidget(self.edit, 1)
        edit_row.addWidget(self.save_button)
        run_row = QHBoxLayout()
        run_row.addWidget(self.backend)
        run_row.addWidget(self.caption_selected_button)
        run_row.addWidget(self.caption_library_button)
        job_row = QHBoxLayout()
        job_row.addWidget(self.progress, 1)
        job_row.addWidget(self.pause_button)
        job_row.addWidget(self.cancel_button)
        col = QVBoxLayout(self)
        col.addWidget(QLabel("<b>Caption</b>"))
        for w in (self.auto_label, self.model_label):
            col.addWidget(w)
        col.addLayout(edit_row)
        col.addLayout(run_row)
        col.addLayout(job_row)
        col.addWidget(self.status)
        col.addStretch(1)

        self.save_button.clicked.connect(self.save_edit)
        self.edit.returnPressed.connect(self.save_edit)
        self.caption_selected_button.clicked.connect(self.caption_selected)
        self.caption_library_button.clicked.connect(lambda: self.run_job(None))
        self.pause_button.toggled.connect(self._toggle_pause)
        self.cancel_button.clicked.connect(self.cancel)

    # -- the selected photo ------------------------------------------------------------

    def show_photo(self, photo_id: int | None) -> None:
        self._photo_id = photo_id
        self._generation += 1
        generation = self._generation
        enabled = photo_id is not None
        self.edit.setEnabled(enabled)
        self.save_button.setEnabled(enabled)
        if photo_id is None:
            self._show([], generation)
            return
        library = self.controller.library
        self.controller.read(lambda: photo_captions(library, photo_id), lambda infos: self._show(infos, generation),
                             lambda exc: show_error(self, exc))

    def _show(self, infos: list[CaptionInfo], generation: int) -> None:
        if generation != self._generation:
            return  # another photo was selected meanwhile
        auto = next((c for c in infos if c.source == "auto"), None)
        user = next((c for c in infos if c.source == "user"), None)
        if self._photo_id is None:
            self.auto_label.setText(NO_PHOTO)
        elif auto is None:
            self.auto_label.setText("No automatic caption yet.")
        else:
            self.auto_label.setText(describe(auto))
        self.model_label.setText(f"by {auto.model_key}" if auto is not None and auto.model_key else "")
        self.edit.setText(user.text if user is not None else "")

    def save_edit(self) -> None:
        photo_id = self._photo_id
        if photo_id is None:
            return
        library, text = self.controller.library, self.edit.text()

        def saved(_info) -> None:
            self.status.setText("Caption saved." if text.strip() else "Your caption was removed.")
            self.captions_changed.emit(photo_id)
            if photo_id == self._photo_id:
                self.show_photo(photo_id)

        self.controller.write(lambda: set_user_caption(library, photo_id, text), saved, lambda exc: show_error(self, exc))

    # -- captioning jobs ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._job is not None

    def caption_selected(self) -> None:
        ids = self.selected_ids()
        if not ids:
            self.status.setText("Select photos in the grid first (or use Caption library).")
            return
        self.run_job(ids)

    def run_job(self, photo_ids: list[int] | None) -> None:
        """Caption these photos (again, if they have a caption) or, with None, the rest of the library."""
        if self._job is not None:
            self.status.setText("A captioning job is already queued or running.")
            return
        from clipdesk.captions.run import caption_library

        library, engine = self.controller.library, self.controller.search_engine
        backend = self.backend.currentText()
        force = photo_ids is not None  # the user asked for these photos: caption them even if done

        def job(progress, cancel):
            captioner = self._captioner(backend, engine)
            return caption_library(library, captioner, engine, photo_ids, n=DEFAULT_CANDIDATES, force=force,
                                   progress=progress, cancel=cancel)

        what = f"{len(photo_ids)} photo(s)" if photo_ids is not None else "the library"
        self._job = self.controller.submit(Job("captions", f"Captioning {what}", job, Lane.INFERENCE))
        self._set_running(True)
        waiting = " (after the job running now)" if self.controller.current_job is not self._job else ""
        self.status.setText(f"Captioning {what} with {backend}…{waiting} (loading the model)")

    def _captioner(self, backend: str, engine):
        """One captioner per backend and settings, kept: models load once (on the inference lane)."""
        from clipdesk.captions.backends import make_captioner

        key = (backend, engine.key, self.caption_model, self.max_len)
        if key not in self._captioners:
            options = {} if self.max_len is None else {"max_len": self.max_len}
            self._captioners[key] = make_captioner(backend, self.controller.library.root, engine,
                                                   caption_model=self.caption_model, device=self.controller.device,
                                                   precision=self.controller.precision, **options)
        return self._captioners[key]

    def _on_job_started(self, job) -> None:
        if job is self._job:
            self._set_running(True)

    def _on_job_progress(self, job, st) -> None:
        if job is self._job:
            self._on_progress(st)

    def _on_job_finished(self, job, report) -> None:
        if job is self._job:
            self._on_done(report)

    def _on_job_failed(self, job, exc) -> None:
        if job is self._job:
            self._on_failed(exc)

    def _on_progress(self, st) -> None:
        if st.total:
            self.progress.setRange(0, st.total)
            self.progress.setValue(st.done)
        if not st.paused:
            self.status.setText(f"Captioning {st.done:,} / {st.total:,}" + (f" · {st.rate:.1f}/s" if st.rate else ""))

    def _on_done(self, report) -> None:
        verb = "Stopped" if report.cancelled else "Captioned"
        text = f"{verb}: {report.captioned:,} of {report.todo:,} photos"
        if report.failed:
            text += f", {report.failed:,} could not be captioned"
        if report.cancelled:
            text += ". Caption library again to continue"
        self.status.setText(text + ".")
        self._job = None
        self._set_running(False)
        self.captions_changed.emit(-1)
        if self._photo_id is not None:
            self.show_photo(self._photo_id)
        self.job_finished.emit(report)

    def _on_failed(self, exc: BaseException) -> None:
        self._job = None
        self._set_running(False)
        show_error(self, exc)

    def _set_running(self, running: bool) -> None:
        for w in (self.progress, self.pause_button, self.cancel_button):
            w.setVisible(running)
        self.caption_selected_button.setEnabled(not running)
        self.caption_library_button.setEnabled(not running)
        self.pause_button.setChecked(False)
        self.progress.setRange(0, 0)

    def _toggle_pause(self, paused: bool) -> None:
        if self._job is None:
            return
        if paused:
            self._job.token.pause()
            self.pause_button.setText("Resume")
            self.status.setText("Captioning paused.")
        else:
            self._job.token.resume()
            self.pause_button.setText("Pause")

    def cancel(self) -> None:
        if self._job is not None:
            job = self._job
            self.controller.jobs.cancel(job)
            if job.state == "cancelled" and self._job is job:  # it was only queued: no report will come
                self._job = None
                self._set_running(False)
                self.status.setText("Captioning cancelled before it started.")
