"""The GUI's view of one library: model, indexing queue and searches.

A QObject without widgets, so the main window stays about layout and the
flow (drop → index → search) can be tested on its own.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal

from clipdesk.config import CoreConfig
from clipdesk.engine.clip import ClipEngine
from clipdesk.engine.registry import PRECISIONS, resolve
from clipdesk.errors import ClipdeskError
from clipdesk.gui.workers import FunctionWorker, IndexWorker, single_lane
from clipdesk.search import Filters, Searcher, Term
from clipdesk.store.db import MODEL_META, Library
from clipdesk.store.queries import folder_summaries

log = logging.getLogger(__name__)


@dataclass
class SearchRequest:
    terms: list[Term]
    filters: Filters = field(default_factory=Filters)
    k: int = 200
    show_all: bool = False
    label: str = ""  # what the user asked, for messages


class LibraryController(QObject):
    """Owns the Library, the engines and the background lanes."""

    model_state = Signal(str, str)  # state (loading | ready | missing), message
    index_started = Signal(list)  # roots
    index_progress = Signal(object)  # workers.IndexStatus
    index_finished = Signal(object)  # indexer.IndexReport
    index_failed = Signal(object)  # exception
    search_finished = Signal(int, object)  # request id, search.SearchResult
    search_failed = Signal(int, object)
    labels_finished = Signal(object)  # labels.run.LabelReport
    feedback_saved = Signal(int, str, bool)  # photo id, label, accepted
    feedback_failed = Signal(object)  # exception
    library_changed = Signal()  # folder counts may have changed

    def __init__(self, library_root: Path, model: str | None = None, device: str = "auto",
                 config: CoreConfig | None = None, parent: QObject | None = None, precision: str = "auto") -> None:
        super().__init__(parent)
        self.library = Library(library_root)
        self.config = config or CoreConfig()
        self.device = device
        self.precision = precision if precision in PRECISIONS else "auto"
        spec = resolve(model or self.library.get_meta(MODEL_META))
        self.engine = self._make_engine(spec)
        self.search_engine = self.engine  # differs only while a model switch re-embeds
        self.inference_lane = single_lane("inference")
        self.search_lane = single_lane("search")
        self.io_pool = QThreadPool()  # DB reads and file IO for the window
        self.io_pool.setMaxThreadCount(2)
        self.writer_lane = single_lane("db-writer")  # small user edits, in the order they were made
        self._queue: list[tuple[str, list[str]]] = []  # ("index", roots) or ("label", [])
        self._index_worker: IndexWorker | None = None
        self._searchers: dict[str, tuple[int, Searcher]] = {}
        self._search_seq = 0
        self._workers: set[FunctionWorker] = set()  # keep Python wrappers alive while queued

    # -- model --------------------------------------------------------------------

    def _make_engine(self, spec) -> ClipEngine:
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
        worker = FunctionWorker(lambda: engine.model)
        worker.signals.result.connect(lambda _: self._model_ready(engine))
        worker.signals.failed.connect(self._model_failed)
        self.start(self.inference_lane, worker)

    def _model_ready(self, engine: ClipEngine) -> None:
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
        if old.loaded and old.key != self.engine.key:
            self.search_engine = old
        else:
            self.search_engine = self.engine
        self.load_model()
        roots = [f.path for f in folder_summaries(self.library, None)]
        if roots:
            self.add_roots(roots)

    # -- indexing -------------------------------------------------------------------

    @property
    def indexing(self) -> bool:
        return self._index_worker is not None

    def add_roots(self, paths: list[str]) -> None:
        """Add folders/files to the library and index them, one job after another."""
        self._queue.append(("index", [os.path.abspath(p) for p in paths]))
        if self._index_worker is None:
            self._next_job()

    def run_labels(self) -> None:
        """Label every embedded photo in the background (after any indexing)."""
        self._queue.append(("label", []))
        if self._index_worker is None:
            self._next_job()

    def vocabulary(self):
        from clipdesk.labels.vocab import load_vocabulary

        return load_vocabulary(self.library.root)

    def set_feedback(self, photo_id: int, label: str, accepted: bool) -> None:
        """Accept or reject a label on a photo, off the GUI thread; ``feedback_saved`` follows."""
        from clipdesk.labels.feedback import set_feedback

        library = self.library
        worker = FunctionWorker(lambda: set_feedback(library, photo_id, label, accepted))
        worker.signals.result.connect(lambda _row: (self.feedback_saved.emit(photo_id, label, accepted),
                                                    self.library_changed.emit()))
        worker.signals.failed.connect(self.feedback_failed)
        self.start(self.writer_lane, worker)

    def review_queue(self, on_result, on_failed, limit: int = 200, label: str | None = None) -> None:
        """The least certain label decisions, computed on the inference lane (it may encode descriptors)."""
        from clipdesk.labels.review import review_queue

        engine, library = self.engine, self.library
        worker = FunctionWorker(lambda: review_queue(library, engine, self.vocabulary(), limit=limit, label=label))
        worker.signals.result.connect(on_result)
        worker.signals.failed.connect(on_failed)
        self.start(self.inference_lane, worker)

    def export_sidecars(self, on_progress, on_result, on_failed, force: bool = False) -> IndexWorker:
        """Write XMP sidecars on the IO pool; returns the worker (its ``token`` cancels)."""
        from clipdesk.labels.export import export_sidecars

        library, vocabulary = self.library, self.vocabulary()
        worker = IndexWorker(lambda progress, cancel: export_sidecars(library, vocabulary, force=force,
                                                                      progress=progress, cancel=cancel))
        worker.signals.progress.connect(on_progress)
        worker.signals.result.connect(on_result)
        worker.signals.failed.connect(on_failed)
        self.start(self.io_pool, worker)
        return worker

    def resume_unfinished(self) -> None:
        """Re-queue folders whose last scan did not finish (a crash or a quit)."""
        pending = [f.path for f in folder_summaries(self.library, self.engine.key)
                   if not f.complete or f.embedded < f.photos]
        if pending:
            self.add_roots(pending)

    def _next_job(self) -> None:
        if not self._queue:
            return
        kind, roots = self._queue.pop(0)
        engine, library, config = self.engine, self.library, self.config
        if kind == "label":
            from clipdesk.labels.run import label_library
            from clipdesk.labels.vocab import load_vocabulary

            def job(progress, cancel):
                return label_library(library, engine, load_vocabulary(library.root), progress=progress, cancel=cancel)

            done_signal = self.labels_finished
        else:
            from clipdesk.indexer import index

            def job(progress, cancel):
                report = index(library, roots, engine, config, progress=progress, cancel=cancel)
                if not report.cancelled:
                    library.set_meta(MODEL_META, engine.spec.name)
                return report

            done_signal = None
        worker = IndexWorker(job)
        worker.signals.progress.connect(self._on_progress)
        worker.signals.result.connect(done_signal.emit if done_signal is not None else self._on_index_done)
        worker.signals.failed.connect(self.index_failed)
        worker.signals.finished.connect(self._on_index_finished)
        self._index_worker = worker
        self.index_started.emit(roots)
        self.start(self.inference_lane, worker)

    def _on_progress(self, status) -> None:
        self.index_progress.emit(status)
        self.library_changed.emit()

    def _on_index_done(self, report) -> None:
        if not report.cancelled and not self._queue and self.search_engine is not self.engine:
            self.search_engine = self.engine  # the new model's index is complete
            self._searchers.clear()
        self.index_finished.emit(report)

    def _on_index_finished(self) -> None:
        cancelled = self._index_worker is not None and self._index_worker.token.cancelled
        self._index_worker = None
        self.library_changed.emit()
        if cancelled:
            self._queue.clear()
        else:
            self._next_job()

    def pause(self) -> None:
        if self._index_worker is not None:
            self._index_worker.token.pause()

    def resume(self) -> None:
        if self._index_worker is not None:
            self._index_worker.token.resume()

    @property
    def paused(self) -> bool:
        return self._index_worker is not None and self._index_worker.token.paused

    def cancel(self) -> None:
        if self._index_worker is not None:
            self._index_worker.token.cancel()

    # -- search ---------------------------------------------------------------------

    def search(self, request: SearchRequest) -> int:
        """Start a search; its result arrives as ``search_finished(id, result)``."""
        self._search_seq += 1
        request_id = self._search_seq
        engine, library = self.search_engine, self.library

        def job():
            generation = library.vectors_generation()
            cached = self._searchers.get(engine.key)
            if cached is None or cached[0] != generation:
                cached = (generation, Searcher(library, engine, self.config.hnsw_min_size,
                                               cutoff=not engine.spec.random_init))
                self._searchers[engine.key] = cached
            return cached[1].search(request.terms, k=request.k, filters=request.filters, show_all=request.show_all)

        worker = FunctionWorker(job)
        worker.signals.result.connect(lambda result: self.search_finished.emit(request_id, result))
        worker.signals.failed.connect(lambda exc: self.search_failed.emit(request_id, exc))
        self.start(self.search_lane, worker)
        return request_id

    # -- housekeeping -----------------------------------------------------------------

    def start(self, pool, worker: FunctionWorker) -> None:
        self._workers.add(worker)
        worker.signals.finished.connect(lambda: self._workers.discard(worker))
        pool.start(worker)

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Stop background work cleanly (on quit): the next launch resumes it."""
        self._queue.clear()
        self.cancel()
        self.inference_lane.waitForDone(timeout_ms)
        self.search_lane.waitForDone(timeout_ms)
        self.io_pool.waitForDone(timeout_ms)
        self.writer_lane.waitForDone(timeout_ms)
        self.library.close()
