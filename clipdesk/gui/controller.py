"""The GUI's view of one library: model, the job queue and searches, all on the three lanes.

A QObject without widgets, so the main window stays about layout and the
flow (drop → index → search) can be tested on its own. Nothing here touches
the database on the GUI thread: reads go to ``Lane.IO``, writes to
``Lane.WRITER`` (the library's ``writer`` hands them there from any lane),
the model to ``Lane.INFERENCE`` (``gui/lanes.py``).

A tuned library ("Tune for my library", ``clipdesk.tuning``) is searched
through ``tuning.active.wrap_engine``, looked up at each search's encoding
step, so a tune or a revert takes effect at the next search; ``self.engine``
stays the base engine, which indexing and tuning work with.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from clipdesk.config import CoreConfig
from clipdesk.engine.registry import PRECISIONS, resolve
from clipdesk.errors import ClipdeskError
from clipdesk.gui.lanes import Job, JobQueue, Lane, TaskManager, default_tasks
from clipdesk.search import NULL_PROMPTS, Filters, Searcher, Term
from clipdesk.search.probes import PROBE_PROMPTS
from clipdesk.store.db import MODEL_META, Library
from clipdesk.store.queries import find_photo, folder_summaries
from clipdesk.tuning.active import unwrap, wrap_engine

log = logging.getLogger(__name__)

INDEX_KINDS = ("index", "labels")  # the jobs the status bar reports as indexing


@dataclass
class SearchRequest:
    terms: list[Term]
    filters: Filters = field(default_factory=Filters)
    k: int = 200
    show_all: bool = False
    label: str = ""  # what the user asked, for messages
    sort: str = "relevance"  # or "date": the same photos, newest first


class _Encoded:
    """The engine as a search on the IO lane sees it: vectors encoded beforehand on the inference lane.

    A search must never run the model on an IO thread (one model, one lane); a miss here is a bug.
    """

    def __init__(self, engine, texts: dict, files: dict, probes=None) -> None:
        self.key, self.spec = engine.key, engine.spec
        self._texts, self._files = texts, files
        self.probes = probes  # the graph calibration's text probes (they are encoded on the inference lane)

    def encode_text(self, texts):
        import numpy as np

        return np.stack([self._texts[t] for t in texts])

    def encode_files(self, paths):
        import numpy as np

        return np.stack([self._files[str(p)] for p in paths])


class LibraryController(QObject):
    """Owns the Library, the engines, the task manager and the job queue."""

    model_state = Signal(str, str)  # state (loading | ready | missing), message
    index_started = Signal(list)  # roots
    index_progress = Signal(object)  # lanes.JobStatus
    index_finished = Signal(object)  # indexer.IndexReport
    index_failed = Signal(object)  # exception
    search_finished = Signal(int, object)  # request id, search.SearchResult
    search_failed = Signal(int, object)
    labels_finished = Signal(object)  # labels.run.LabelReport
    feedback_saved = Signal(int, str, bool)  # photo id, label, accepted
    feedback_failed = Signal(object)  # exception
    library_changed = Signal()  # folder counts may have changed
    tune_finished = Signal(object)  # tuning.run.TuneReport (kept, rolled back or stopped)
    tune_failed = Signal(object)  # exception (a QueryError: too few photos)
    tuning_reverted = Signal(object)  # tuning.manage.revert's counts
    tuning_changed = Signal()  # what searches use may have changed: a tune was kept, or reverted

    def __init__(self, library_root: Path, model: str | None = None, device: str = "auto",
                 config: CoreConfig | None = None, parent: QObject | None = None, precision: str = "auto",
                 tasks: TaskManager | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks or default_tasks()
        self.jobs = JobQueue(self.tasks, parent=self)
        self.config = config or CoreConfig()
        self.device = device
        self.precision = precision if precision in PRECISIONS else "auto"
        # Opening runs migrations and reads which model the library uses: on the writer lane, waited for
        # once at launch, before the window exists.
        self.library, stored = self._open(Path(library_root))
        self.library.writer = lambda thunk: self.tasks.call(Lane.WRITER, thunk)
        spec = resolve(model or stored)
        self.engine = self._make_engine(spec)
        self.search_engine = self.engine  # differs only while a model switch re-embeds
        self._searchers: dict[str, tuple[int, Searcher]] = {}
        self._searchers_lock = threading.Lock()  # IO threads search; a model switch clears
        self._refreshing: set[tuple[str, int]] = set()  # (model key, generation) searchers being made
        self._null: dict[str, object] = {}  # engine key -> encoded generic prompts
        self._probes: dict[str, object] = {}  # engine key -> encoded calibration prompts of the search graph
        self._probes_lock = threading.Lock()
        self._search_seq = 0
        self.jobs.started.connect(self._on_job_started)
        self.jobs.progress.connect(self._on_job_progress)
        self.jobs.finished.connect(self._on_job_finished)
        self.jobs.failed.connect(self._on_job_failed)

    def _open(self, root: Path) -> tuple[Library, str | None]:
        def open_it():
            library = Library(root)
            return library, library.get_meta(MODEL_META)

        return self.tasks.call(Lane.WRITER, open_it)

    # -- lanes, for the widgets ---------------------------------------------------

    def read(self, fn, on_done=None, on_failed=None):
        """A database or file read off the GUI thread; ``on_done(result)`` back on it."""
        return self.tasks.run(Lane.IO, fn, on_done, on_failed)

    def write(self, fn, on_done=None, on_failed=None):
        """A database write on the one writer lane, in the order writes were asked for."""
        return self.tasks.run(Lane.WRITER, fn, on_done, on_failed)

    def infer(self, fn, on_done=None, on_failed=None, urgent: bool = False):
        """Model work on the inference lane (``urgent``: between the batches of a running job)."""
        return self.tasks.run(Lane.INFERENCE, fn, on_done, on_failed, urgent=urgent)

    # -- model --------------------------------------------------------------------

    def _make_engine(self, spec):
        def on_download(done: int, total: int) -> None:  # called on the inference lane
            pct = f"{100 * done / total:.0f}% of {total / 1e6:,.0f} MB" if total else f"{done / 1e6:,.0f} MB"
            self.model_state.emit("downloading", f"Downloading the weights of {spec.name} (first use only): {pct}")

        from clipdesk.engine.backend import make_engine  # torch, or ONNX Runtime in the packaged app

        return make_engine(spec, device=self.device, batch_size=self.config.batch_size, on_download=on_download,
                           precision=self.precision)

    def load_model(self) -> None:
        """Load the model in the background; the window is already up."""
        engine = self.engine
        self.model_state.emit("loading", f"Loading model {engine.spec.name}…")
        self.infer(lambda: engine.model, lambda _: self._model_ready(engine), self._model_failed)

    def _model_ready(self, engine) -> None:
        if engine is not self.engine:
            return
        self.model_state.emit("ready", f"Model {engine.spec.label} on {engine.device}")

    def _model_failed(self, exc: BaseException) -> None:
        self.model_state.emit("missing", str(exc) if isinstance(exc, ClipdeskError) else f"Model failed to load: {exc}")

    def switch_model(self, spec_text: str, device: str, precision: str | None = None) -> None:
        """Use another model (or device, or precision): re-embed in the background, searching the old one meanwhile."""
        spec = resolve(spec_text)
        self.device = device
        if precision is not None:
            self.precision = precision
        old = self.engine
        self.engine = self._make_engine(spec)
        # Searches keep the old model until the new one's index job completes (_on_index_done). Keys are not
        # compared here: a key may hash a multi-GB checkpoint or import torch, not this thread's work.
        self.search_engine = old if old.loaded else self.engine
        self.load_model()
        library = self.library
        self.read(lambda: [f.path for f in folder_summaries(library, None)],
                  lambda roots: roots and self.add_roots(roots))

    # -- the job queue ------------------------------------------------------------------

    @property
    def indexing(self) -> bool:
        return any(j.kind in INDEX_KINDS for j in self.jobs.jobs())

    @property
    def current_job(self) -> Job | None:
        return self.jobs.current

    def submit(self, job: Job) -> Job:
        """Queue a long job (captions, exports, …); it shows in the status bar with pause and cancel."""
        return self.jobs.submit(job)

    def add_roots(self, paths: list[str]) -> None:
        """Add folders/files to the library and index them, one job after another."""
        from clipdesk.indexer import index
        from clipdesk.tuning.manage import refresh

        roots = [os.path.abspath(p) for p in paths]
        engine, library, config = unwrap(self.engine), self.library, self.config

        def job(progress, cancel):
            report = index(library, roots, engine, config, progress=progress, cancel=cancel)
            if not report.cancelled:
                library.set_meta(MODEL_META, engine.spec.name)
                # Indexing stores base vectors (so a revert stays exact); a tuned library's new photos
                # then get their tuned vectors, derived from those (numpy, no model).
                refresh(library, engine, lambda p: p.total and progress(p), cancel)
            return report

        names = ", ".join(os.path.basename(r) or r for r in roots)
        self.jobs.submit(Job("index", f"Indexing {names}", job, Lane.INFERENCE, on_done=self._on_index_done,
                             roots=roots))

    def run_labels(self) -> None:
        """Label every embedded photo in the background (after any indexing)."""
        from clipdesk.labels.run import label_library
        from clipdesk.labels.vocab import load_vocabulary

        engine, library = self.engine, self.library

        def job(progress, cancel):
            return label_library(library, engine, load_vocabulary(library.root), progress=progress, cancel=cancel)

        self.jobs.submit(Job("labels", "Labelling photos", job, Lane.INFERENCE, on_done=self.labels_finished.emit))

    def run_ocr(self) -> Job:
        """Read the words in photos not read yet (Tools ▸ Read words in photos), as a job on the inference lane."""
        from clipdesk.gui.ocr_job import ocr_job

        return self.jobs.submit(ocr_job(self.library))

    def export_sidecars(self, force: bool = False) -> Job:
        """Write XMP sidecars as a job on the IO lane; the returned job's ``token`` cancels it."""
        from clipdesk.labels.export import export_sidecars

        library = self.library

        def job(progress, cancel):
            from clipdesk.labels.vocab import load_vocabulary

            return export_sidecars(library, load_vocabulary(library.root), force=force, progress=progress,
                                   cancel=cancel)

        return self.jobs.submit(Job("export", "Writing XMP sidecars", job, Lane.IO))

    def vocabulary(self):
        from clipdesk.labels.vocab import load_vocabulary

        return load_vocabulary(self.library.root)

    def set_feedback(self, photo_id: int, label: str, accepted: bool) -> None:
        """Accept or reject a label on a photo, on the writer lane; ``feedback_saved`` follows."""
        from clipdesk.labels.feedback import set_feedback

        library = self.library
        self.write(lambda: set_feedback(library, photo_id, label, accepted),
                   lambda _row: (self.feedback_saved.emit(photo_id, label, accepted), self.library_changed.emit()),
                   self.feedback_failed.emit)

    def review_queue(self, on_result, on_failed, limit: int = 200, label: str | None = None) -> None:
        """The least certain label decisions, computed on the inference lane (it may encode descriptors)."""
        from clipdesk.labels.review import review_queue

        engine, library = self.engine, self.library
        self.infer(lambda: review_queue(library, engine, self.vocabulary(), limit=limit, label=label),
                   on_result, on_failed)

    def resume_unfinished(self) -> None:
        """Re-queue folders whose last scan did not finish (a crash or a quit)."""
        library, engine = self.library, self.engine

        def pending():  # the engine's key may hash its checkpoint: on the IO lane too
            return [f.path for f in folder_summaries(library, engine.key) if not f.complete or f.embedded < f.photos]

        self.read(pending, lambda roots: roots and self.add_roots(roots))

    def _on_job_started(self, job: Job) -> None:
        if job.kind in INDEX_KINDS:
            self.index_started.emit(list(job.roots))

    def _on_job_progress(self, job: Job, status) -> None:
        if job.kind in INDEX_KINDS:
            self.index_progress.emit(status)
            self.library_changed.emit()

    def _on_index_done(self, report) -> None:
        if not report.cancelled and not self.jobs.jobs("index") and self.search_engine is not self.engine:
            self.search_engine = self.engine  # the new model's index is complete
            with self._searchers_lock:
                self._searchers.clear()
        self.index_finished.emit(report)

    def _on_job_finished(self, job: Job, _result) -> None:
        if job.kind in INDEX_KINDS:
            self.library_changed.emit()
            if job.token.cancelled:  # Cancel stops what was queued behind it too, as before
                for other in list(self.jobs.pending):
                    if other.kind in INDEX_KINDS:
                        self.jobs.cancel(other)

    def _on_job_failed(self, job: Job, exc) -> None:
        if job.kind in INDEX_KINDS:
            self.index_failed.emit(exc)
            self.library_changed.emit()

    def pause(self) -> None:
        self.jobs.pause()

    def resume(self) -> None:
        self.jobs.resume()

    @property
    def paused(self) -> bool:
        return self.jobs.current is not None and self.jobs.current.paused

    def cancel(self) -> None:
        self.jobs.cancel()

    # -- tuning -------------------------------------------------------------------------

    def tuning_status(self, on_done, on_failed=None) -> None:
        """``tuning.manage.tuning_status`` read on the IO lane (it also reads the heads file)."""
        from clipdesk.tuning.manage import tuning_status

        library = self.library
        self.read(lambda: tuning_status(library), on_done, on_failed)

    def tune(self, options) -> Job:
        """Tune the library's space for the base model, as a job on the inference lane (status bar: progress,
        cancel); ``tune_finished(report)`` or ``tune_failed(exc)`` follow. ``options``: ``tuning.run.TuneOptions``;
        without ``coco``, text search is also checked on the shared coco_mini when there is one."""
        from clipdesk.tuning import run

        engine, library = unwrap(self.engine), self.library

        def job(progress, cancel):
            chosen = options if options.coco is not None else replace(options, coco=_shared_coco())
            return run.tune(library, engine, chosen, progress=progress, cancel=cancel)

        return self.jobs.submit(Job("tune", "Tuning for this library", job, Lane.INFERENCE,
                                    on_done=self._on_tuned, on_failed=self.tune_failed.emit))

    def revert_tuning(self, on_failed=None) -> None:
        """``tuning.manage.revert`` on the writer lane, ``tuning_reverted(counts)`` after it. Its writes run there
        in one go (``TaskManager.call`` is re-entrant on its own lane), so no other write lands in the middle.
        Not while a tune job is queued or running: it writes the vectors a revert removes."""
        from clipdesk.tuning.manage import revert

        if self.jobs.jobs("tune"):
            raise ClipdeskError("A tuning is running: cancel it (or let it finish) before reverting.")
        library = self.library
        self.write(lambda: revert(library), self._on_reverted, on_failed)

    def _on_tuned(self, report) -> None:
        self._searches_changed()
        self.tune_finished.emit(report)

    def _on_reverted(self, result: dict) -> None:
        self._searches_changed()
        self.tuning_reverted.emit(result)

    def _searches_changed(self) -> None:
        with self._searchers_lock:
            self._searchers.clear()  # the next search wraps the engine anew (``wrap_engine``)
        self.tuning_changed.emit()
        self.library_changed.emit()

    # -- search ---------------------------------------------------------------------

    def search(self, request: SearchRequest) -> int:
        """Start a search; its result arrives as ``search_finished(id, result)``.

        Three hops: query images that are library photos become photo terms (IO), the text and any
        outside images are encoded (inference, ahead of a running job's next batch), then the stored
        vectors are searched (IO).
        """
        self._search_seq += 1
        request_id = self._search_seq
        engine, library = self.search_engine, self.library

        def failed(exc):
            self.search_failed.emit(request_id, exc)

        def resolve_photos():
            terms = []
            for t in request.terms:
                photo_id = find_photo(library, t.value) if t.kind == "file" else None
                terms.append(Term("photo", photo_id, t.weight, t.negative) if photo_id is not None else t)
            return terms

        def encode(terms):
            # The tuned space when the library has an active tuning of this model (a meta read and a cached
            # heads file: inference lane, never the GUI thread); its key names the vectors searched below.
            space = wrap_engine(library, engine)
            texts = sorted({str(t.value) for t in terms if t.kind == "text"})
            files = sorted({str(t.value) for t in terms if t.kind == "file"})
            if space.key not in self._null:
                self._null[space.key] = space.encode_text(list(NULL_PROMPTS))
            text_vecs = dict(zip(texts, space.encode_text(texts), strict=True)) if texts else {}
            text_vecs.update(zip(NULL_PROMPTS, self._null[space.key], strict=True))
            file_vecs = dict(zip(files, space.encode_files(files), strict=True)) if files else {}
            return terms, _Encoded(space, text_vecs, file_vecs, self._probe_vectors(space))

        def run_search(encoded):
            terms, encoder = encoded
            with self._searchers_lock:
                generation = library.vectors_generation()
                cached = self._searchers.get(encoder.key)
                if cached is not None and cached[0] != generation and cached[1].index.mode == "hnsw":
                    # A large library changed (an indexing run): its vectors are refreshed for the new generation
                    # off this search's path (seconds at 1M photos); the previous ones answer meanwhile, and
                    # photos gone since are dropped from their results (``Searcher`` reads presence per hit).
                    self._refresh_searcher(encoder, generation)
                elif cached is None or cached[0] != generation:
                    cached = (generation, self._new_searcher(encoder))
                    self._searchers[encoder.key] = cached
                searcher = cached[1]
                searcher.engine = encoder
                return searcher.search(terms, k=request.k, filters=request.filters, show_all=request.show_all,
                                       sort=request.sort)

        def encoded(result):
            self.read(lambda: run_search(result), lambda found: self.search_finished.emit(request_id, found), failed)

        self.read(resolve_photos, lambda terms: self.infer(lambda: encode(terms), encoded, failed, urgent=True),
                  failed)
        return request_id

    def _new_searcher(self, encoder) -> Searcher:
        return Searcher(self.library, encoder, self.config.hnsw_min_size, cutoff=not encoder.spec.random_init,
                        background=True)

    def _refresh_searcher(self, encoder, generation: int) -> None:
        """Make the searcher of ``generation`` on the IO lane (once), and use it from then on."""
        key = (encoder.key, generation)
        if key in self._refreshing:
            return
        self._refreshing.add(key)

        def make():
            searcher = self._new_searcher(encoder)
            searcher.index.prepare_graph()  # the graph in memory is brought up to date meanwhile
            with self._searchers_lock:
                current = self._searchers.get(encoder.key)
                if current is None or current[0] < generation:
                    self._searchers[encoder.key] = (generation, searcher)
                self._refreshing.discard(key)

        def failed(exc):
            self._refreshing.discard(key)
            log.warning("could not refresh the search vectors: %s", exc)

        self.read(make, None, failed)

    def _probe_vectors(self, space):
        """The search graph's calibration prompts for ``space``, for its own thread: encoded on the inference lane
        (one model, one lane) the first time a graph asks, while that thread waits; kept per model."""
        def probes():
            with self._probes_lock:
                if space.key not in self._probes:
                    box: Future = Future()

                    def work():
                        try:
                            box.set_result(space.encode_text(list(PROBE_PROMPTS)))
                        except BaseException as exc:  # noqa: BLE001 - handed to the waiting graph thread
                            box.set_exception(exc)

                    self.infer(work)
                    self._probes[space.key] = box.result(timeout=600)
                return self._probes[space.key]

        return probes

    # -- housekeeping -----------------------------------------------------------------

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Stop background work cleanly (on quit): the next launch resumes it."""
        self.jobs.cancel_all()
        self.tasks.shutdown(timeout_ms)
        self.library.close()


def _shared_coco():
    """The shared data's coco_mini folder, or None (looks at the disk: not on the GUI thread)."""
    from clipdesk.eval.data import COCO, shared_data_root

    root = shared_data_root()
    return root / COCO if root is not None and (root / COCO).is_dir() else None
