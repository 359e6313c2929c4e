"""Vectors for search: an exact in-RAM matrix, or an HNSW graph when large.

The database is the source of truth. The graph is derived data (``graph.py``):
saved beside the database, brought up to date in place when the library
changed, rebuilt when damaged or worn. A search never waits for that work
when the index runs it in the background: it answers exactly until the graph
is ready.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime

import numpy as np
from sqlalchemy import func, select

from clipdesk.store.db import Library
from clipdesk.store.derived import let_go
from clipdesk.store.graph import (
    CANDIDATES_MIN,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    RERANK_EXTRA,
    Graph,
    SavedGraph,
    Snapshot,
)
from clipdesk.store.models import Embedding, Photo
from clipdesk.store.vector_file import VectorFile

log = logging.getLogger(__name__)
__all__ = ["HNSW_EF_CONSTRUCTION", "HNSW_EF_SEARCH", "HNSW_M", "VectorIndex", "VectorSet", "load_vectors"]

EXACT_BLOCK = 65_536  # rows per block of an exact search without the fp32 matrix: 128 MB of fp32 at 512-d
# A filter that keeps at most this many photos is searched exactly: the graph would have to walk so deep to find
# k of them that its text-query recall drops (0.89 at 1M with a 10 % filter, even oversampled 3x), and gathering
# 150k rows costs tens of milliseconds.
FILTER_EXACT_MAX = 150_000
# A filtered search through the graph asks for this many times the candidates that should pass the filter: the
# filter's best photos sit deeper in the unfiltered order, where the graph's recall is lower (measured at 1M with
# a 10 % filter: text-like recall 0.86 at 1.5x).
OVERSAMPLE = 3.0
OVERSAMPLE_MAX = 8192
RELEASE_AFTER = 64 << 20  # bytes of memory-mapped vectors mapped in between two releases of their pages
FAULT_AROUND = 64 << 10  # what Linux maps around a page fault (fault_around_bytes): a scattered row costs this
PREAD_MAX = 4096  # up to this many rows are read with os.pread instead of through the memory map


class VectorSet:
    """Photo ids (ascending) and their unit vectors.

    The vectors stay fp16 as read (memory-mapped from the vector file, or
    from SQLite) until ``matrix`` is first asked for: a large library that
    searches through its graph then never builds the fp32 copy (2 GB at 1M
    photos); ``rows`` converts just the rows asked for and ``exact_top``
    searches in blocks with bounded extra memory.
    """

    def __init__(self, ids: np.ndarray, matrix16: np.ndarray, as_of: str | None = None) -> None:
        self.ids = ids
        self.as_of = as_of  # the newest vector's write time (ISO), or None
        self._m16 = matrix16
        self._m32: np.ndarray | None = None
        self._lock = threading.Lock()
        self._read = 0  # bytes of the memory-mapped file read since its pages were last let go of
        self._fh = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self._m16.shape[1]) if self._m16.ndim == 2 else 0

    @property
    def matrix(self) -> np.ndarray:
        """float32, one unit row per id (numpy's fp16 matmul is ~20x slower)."""
        if self._m32 is None:
            with self._lock:
                if self._m32 is None:
                    self._m32 = np.asarray(self._m16, dtype=np.float32)
                    self.release()
        return self._m32

    def rows(self, rows) -> np.ndarray:
        """float32 rows ``rows`` without converting the rest."""
        if self._m32 is not None:
            return self._m32[rows]
        index = np.asarray(rows)
        if index.ndim == 1 and index.dtype.kind in "iu" and len(index) <= PREAD_MAX and self._file() is not None:
            return self._pread(index).astype(np.float32)
        out = np.asarray(self._m16[rows], dtype=np.float32)
        self._read += len(out) * max(self.dim * 2, FAULT_AROUND)
        if self._read > RELEASE_AFTER:
            self.release()
        return out

    def _pread(self, index: np.ndarray) -> np.ndarray:
        """fp16 rows ``index`` read from the file with ``os.pread``. Through the memory map, each scattered row
        would map a whole page-cache folio (up to 2 MB) into this process: +500 MB after 100 searches at 1M photos,
        beside the graph. Read like this, they stay in the page cache, which the kernel can reclaim. (A filter's
        thousands of rows still go through the map, 4x faster than row by row here, and are let go of after.)"""
        fd, offset, width = self._file().fileno(), self._m16.offset, self.dim * 2
        out = np.empty((len(index), self.dim), np.float16)
        flat = out.view(np.uint8).reshape(len(index), width)
        for i, r in enumerate(index.tolist()):
            flat[i] = np.frombuffer(os.pread(fd, width, offset + r * width), np.uint8)
        return out

    def _block(self, start: int, stop: int) -> np.ndarray:
        """fp16 rows ``start:stop`` (contiguous): one read from the file where it can, not through the map."""
        if self._file() is None:
            return self._m16[start:stop]
        width = self.dim * 2
        data = os.pread(self._file().fileno(), (stop - start) * width, self._m16.offset + start * width)
        return np.frombuffer(data, np.float16).reshape(stop - start, self.dim)

    def _file(self):
        """The vector file, opened for positional reads (None: vectors from SQLite, or no ``os.pread`` here)."""
        if self._fh is None and isinstance(self._m16, np.memmap) and hasattr(os, "pread") and self._m16.filename:
            with self._lock:
                if self._fh is None:
                    self._fh = open(self._m16.filename, "rb")  # noqa: SIM115 - kept open for the set's lifetime
        return self._fh

    def row_of(self, photo_id: int) -> int | None:
        i = int(np.searchsorted(self.ids, photo_id))
        return i if i < len(self.ids) and self.ids[i] == photo_id else None

    def exact_top(self, queries: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` rows and scores per query (``queries``: m x dim), over all rows or over ``rows``
        (ascending): in blocks of ``EXACT_BLOCK`` rows, so at most one block is ever converted to fp32."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        pool = np.arange(len(self.ids)) if rows is None else np.asarray(rows, np.int64)
        k = min(k, len(pool))
        best_rows = np.zeros((len(queries), 0), np.int64)
        best = np.zeros((len(queries), 0), np.float32)
        for start in range(0, len(pool), EXACT_BLOCK):
            part = pool[start:start + EXACT_BLOCK]
            if self._m32 is not None:
                block = self._m32[part] if rows is not None else self._m32[start:start + EXACT_BLOCK]
            elif rows is None and self._file() is not None:  # a full scan reads the file, not the map: see _pread
                block = np.asarray(self._block(start, start + len(part)), dtype=np.float32)
            else:
                src = self._m16[part] if rows is not None else self._m16[start:start + EXACT_BLOCK]
                block = np.asarray(src, dtype=np.float32)
            scores = np.concatenate([best, queries @ block.T], axis=1)
            cand = np.concatenate([best_rows, np.broadcast_to(part, (len(queries), len(part)))], axis=1)
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if scores.shape[1] > k else slice(None)
            best = np.take_along_axis(scores, top, axis=1) if scores.shape[1] > k else scores
            best_rows = np.take_along_axis(cand, top, axis=1) if cand.shape[1] > k else cand
        if self._m32 is None:
            self._read += len(pool) * (self.dim * 2 if rows is None else max(self.dim * 2, FAULT_AROUND))
            if self._read > RELEASE_AFTER:
                self.release()  # a scan reads the file once: nothing gains by keeping its pages
        order = np.argsort(-best, axis=1, kind="stable")
        return np.take_along_axis(best_rows, order, axis=1), np.take_along_axis(best, order, axis=1)

    def top_exact(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Photo ids of the exact top-``k`` per query."""
        return self.ids[self.exact_top(queries, k)[0]]

    def release(self) -> None:
        """Let go of the memory-mapped pages read so far (a full scan or a graph build touches all of the file,
        1 GB at 1M photos, which would stay in this process's resident memory until the kernel needs it)."""
        self._read = 0
        let_go(self._m16)


def load_vectors(library: Library, model_key: str, generation: int | None = None) -> VectorSet:
    """All present photos' vectors for ``model_key``, from the vector file when it holds this generation; else
    the file is refreshed (the rows written since it, read from the database, merged with the rest of it) or,
    with no intact file, written from the database. ``generation``: the one read before, when the caller has it."""
    generation = library.vectors_generation() if generation is None else generation
    vector_file = VectorFile(library.vectors_dir, model_key)
    cached = vector_file.load_any()
    if cached is not None and cached[3] == generation:
        ids, matrix16, as_of, _ = cached
        return VectorSet(ids, matrix16, as_of) if len(ids) else _empty()
    as_of = _newest_vector(library, model_key)  # before the rows: a later write is re-read, never missed
    if cached is not None and cached[2] is not None and len(cached[0]):
        ids, rows, dim = _refresh(library, model_key, *cached[:3])
        if not len(ids):
            return _empty()
        if vector_file.save(ids, rows, generation, as_of, dim):
            fresh = vector_file.load(generation)
            if fresh is not None:
                return VectorSet(fresh[0], fresh[1], as_of)
        return VectorSet(ids, rows(0, len(ids)), as_of)  # the file could not be written: in memory
    ids, matrix16 = _read_database(library, model_key)
    if not len(ids):
        return _empty()
    vector_file.save(ids, matrix16, generation, as_of)
    return VectorSet(ids, matrix16, as_of)


def _empty() -> VectorSet:
    return VectorSet(np.zeros(0, np.int64), np.zeros((0, 0), np.float16))


def _refresh(library: Library, model_key: str, old_ids: np.ndarray, old: np.ndarray, old_as_of: str):
    """(present ids, rows(start, stop), dim): the old file's rows where still valid, the database's for photos
    embedded after ``old_as_of`` and for photos the old file lacks (new, or back from missing)."""
    with library.session() as s:
        present = np.fromiter((r[0] for r in s.execute(
            select(Embedding.photo_id).join(Photo, Photo.id == Embedding.photo_id)
            .where(Embedding.model_key == model_key, Photo.missing_since.is_(None))
            .order_by(Embedding.photo_id))), np.int64)
        changed = {r[0] for r in s.execute(select(Embedding.photo_id).where(
            Embedding.model_key == model_key, Embedding.created_at > datetime.fromisoformat(old_as_of)))}
    pos = np.minimum(np.searchsorted(old_ids, present), len(old_ids) - 1)
    in_old = old_ids[pos] == present
    fetch = present[~in_old | np.isin(present, np.fromiter(changed, np.int64, len(changed)))]
    fetched_ids, fetched = _read_database(library, model_key, fetch)
    dim = int(old.shape[1])
    if len(fetched) and fetched.shape[1] != dim:
        raise ValueError(f"{model_key}: vectors of {fetched.shape[1]} dimensions beside {dim}")
    from_db = np.isin(present, fetched_ids)

    def rows(start: int, stop: int) -> np.ndarray:
        block = np.empty((stop - start, dim), np.float16)
        db = from_db[start:stop]
        if db.any():
            block[db] = fetched[np.searchsorted(fetched_ids, present[start:stop][db])]
        if not db.all():
            block[~db] = old[pos[start:stop][~db]]
        let_go(old)  # the old file's pages, once copied: not a second 1 GB in memory
        return block

    return present, rows, dim


def _read_database(library: Library, model_key: str, only: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Present photos' vectors, all of them or those of the ids ``only``."""
    query = (select(Embedding.photo_id, Embedding.vector, Embedding.dim)
             .join(Photo, Photo.id == Embedding.photo_id)
             .where(Embedding.model_key == model_key, Photo.missing_since.is_(None))
             .order_by(Embedding.photo_id))
    with library.session() as s:
        if only is None:
            rows = s.execute(query).all()
        else:
            rows = [r for start in range(0, len(only), 20_000)
                    for r in s.execute(query.where(Embedding.photo_id.in_(only[start:start + 20_000].tolist())))]
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float16)
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    return ids, np.frombuffer(b"".join(r[1] for r in rows), "<f2").reshape(len(rows), rows[0][2])


class VectorIndex:
    """Top-k inner-product search over one model's vectors.

    ``background=True`` (the app): the graph is loaded, updated or built on a
    thread of its own and searches answer exactly meanwhile. Otherwise (the CLI,
    one search per process) the first search that needs the graph gets it first.
    ``probes``: text query vectors for calibrating the graph's depth (``graph.calibrate``).
    """

    def __init__(self, library: Library, model_key: str, hnsw_min_size: int, background: bool = False,
                 probes: Callable[[], np.ndarray | None] | None = None) -> None:
        self.library = library
        self.model_key = model_key
        self.hnsw_min_size = hnsw_min_size
        self.background = background
        # Read before the vectors: if they change meanwhile, the graph records the older state and is updated later.
        self.generation = library.vectors_generation()
        self.vectors = load_vectors(library, model_key, self.generation)
        # In the app (background) the graph is loaded into memory, so that an indexing run updates it in place, and
        # small updates stay there (saving would hold up its searches); elsewhere a current graph is memory-mapped.
        self.graph = SavedGraph(library.vectors_dir, model_key, probes, defer_save=background, mutable=background)
        self._hnsw: Graph | None = None
        self._view: Graph | None = None
        self._view_tried = False
        self._lock = threading.Lock()
        self._graph_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.graph_error: Exception | None = None

    @property
    def mode(self) -> str:
        return "hnsw" if len(self.vectors) >= max(1, self.hnsw_min_size) else "exact"

    @property
    def graph_ready(self) -> bool:
        return self._hnsw is not None

    @property
    def search_mode(self) -> str:
        """How the next search runs: "hnsw", "exact", or "exact" while a background graph gets ready (unless
        this process holds the graph already, a generation behind: then it answers while brought up to date)."""
        if self.mode == "hnsw" and self.background and not self.graph_ready and self._live() is None:
            return "exact"
        return self.mode

    def search(self, query: np.ndarray, k: int, allow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (photo ids, scores), best first. ``allow``: optional bool mask over ``vectors.ids``."""
        n = len(self.vectors)
        k = min(k, n if allow is None else int(allow.sum()))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = np.asarray(query, np.float32)
        if self.mode == "hnsw":
            if self.background and self._hnsw is None:
                live = self._live()
                if live is not None:  # being brought up to date: photos new since are found once added
                    self.prepare_graph()
                    return self._graph_search(query, k, allow, live)
                view = self._saved_view()
                if view is not None:
                    # A current graph on disk answers at once, memory-mapped. The load into memory (which later
                    # updates need) starts once this answer is out: usearch loads under the GIL, and this
                    # search would wait for all of it.
                    try:
                        return self._graph_search(query, k, allow, view)
                    finally:
                        self.prepare_graph()
                self.prepare_graph()
            else:
                return self._graph_search(query, k, allow)
            # A large library while its graph gets ready: exact, in blocks (no fp32 copy of every vector).
            rows, scores = self.vectors.exact_top(query, k, None if allow is None else np.flatnonzero(allow))
            return self.vectors.ids[rows[0]], scores[0]
        scores = self.vectors.matrix @ query
        if allow is not None:
            scores = np.where(allow, scores, -np.inf)
        return self._top(np.arange(n), scores, k)

    def prepare_graph(self) -> threading.Thread:
        """Start getting the graph ready on a thread of its own (once); searches answer exactly meanwhile."""
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._prepare, name=f"graph:{self.model_key}", daemon=True)
                self._worker.start()
            return self._worker

    def _prepare(self) -> None:
        try:
            self.hnsw()
        except Exception as exc:  # e.g. a full disk while saving: searches stay exact, and correct
            self.graph_error = exc
            log.warning("search graph for %s not ready: %s; searching exactly", self.model_key, exc)

    def _top(self, rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return self.vectors.ids[rows[top]], scores[top].astype(np.float32)

    def _saved_view(self) -> Graph | None:
        """The saved graph memory-mapped, when it holds this generation (until the loaded one is ready)."""
        if self._view is None and not self._view_tried:
            self._view_tried = True
            if self.graph.saved_generation() == self.generation:
                self._view = self.graph.view(self.vectors.dim)
        return self._view if self._hnsw is None else None

    def _live(self) -> Graph | None:
        live = self.graph.live()
        return live if live is not None and live.dim == self.vectors.dim else None

    def _graph_search(self, query: np.ndarray, k: int, allow: np.ndarray | None,
                      graph: Graph | None = None) -> tuple[np.ndarray, np.ndarray]:
        graph = graph or self.hnsw()
        n = len(self.vectors)
        if allow is not None:
            allowed = int(allow.sum())
            if allowed <= FILTER_EXACT_MAX:
                rows, scores = self.vectors.exact_top(query, k, np.flatnonzero(allow))
                return self.vectors.ids[rows[0]], scores[0]
            # Enough photos pass that the graph's top candidates hold k of them: ask for deep enough a list.
            want = min(OVERSAMPLE_MAX, n, int(np.ceil((k + RERANK_EXTRA) * OVERSAMPLE * n / allowed)))
        else:
            want = min(n, max(k + RERANK_EXTRA, CANDIDATES_MIN))
        labels = graph.candidates(query, want, ef=max(graph.ef, want))
        rows = np.minimum(np.searchsorted(self.vectors.ids, labels), n - 1)
        ok = self.vectors.ids[rows] == labels
        if allow is not None:
            ok &= allow[rows]
        rows = rows[ok]
        if len(rows) < k:  # too few candidates (a filter, a graph mid-update, or k near the library's size)
            rows, scores = self.vectors.exact_top(query, k, None if allow is None else np.flatnonzero(allow))
            return self.vectors.ids[rows[0]], scores[0]
        return self._top(rows, self.vectors.rows(rows) @ query, k)

    def hnsw(self) -> Graph:
        """The graph for these vectors: the saved one, brought up to date, or built (and saved)."""
        if self._hnsw is None:
            with self._graph_lock:  # one opener; a caller that needs the graph now waits for the thread's
                if self._hnsw is None:
                    snap = Snapshot(self.vectors, self.generation)
                    graph = self.graph.open(snap, self._changed_since)
                    self.vectors.release()  # the build or update read the vector file; the graph has them now
                    self._hnsw = graph
                    self._view = None  # its mapped pages go with it
        return self._hnsw

    def _changed_since(self, as_of: str) -> np.ndarray:
        """Photos whose vectors were written after ``as_of``. The graph's ``as_of`` is read before its vectors, so a
        batch that lands in between is re-added later, harmlessly; a batch shares one write time, so none is missed."""
        with self.library.session() as s:
            rows = s.execute(select(Embedding.photo_id).where(
                Embedding.model_key == self.model_key, Embedding.created_at > datetime.fromisoformat(as_of))).all()
        return np.asarray(sorted(r[0] for r in rows), np.int64)


def _newest_vector(library: Library, model_key: str) -> str | None:
    with library.session() as s:
        newest = s.scalar(select(func.max(Embedding.created_at)).where(Embedding.model_key == model_key))
    return newest.isoformat() if newest is not None else None
