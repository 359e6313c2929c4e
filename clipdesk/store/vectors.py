"""Vectors for search: an exact in-RAM matrix, or an HNSW graph when large.

The database is the source of truth. The graph is derived data (``graph.py``):
saved beside the database, brought up to date in place when the library
changed, rebuilt when damaged or worn. A search never waits for that work
when the index runs it in the background: it answers exactly until the graph
is ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

import numpy as np
from sqlalchemy import func, select

from clipdesk.store.db import Library
from clipdesk.store.graph import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, SavedGraph, Snapshot
from clipdesk.store.models import Embedding, Photo
from clipdesk.store.vector_file import VectorFile

log = logging.getLogger(__name__)
__all__ = ["HNSW_EF_CONSTRUCTION", "HNSW_EF_SEARCH", "HNSW_M", "VectorIndex", "VectorSet", "load_vectors"]


class VectorSet:
    """Photo ids (ascending) and their unit vectors.

    The vectors stay fp16 as read (memory-mapped from the vector file, or
    from SQLite) until ``matrix`` is first asked for: a large library that
    searches through its graph then never builds the fp32 copy (2 GB at 1M
    photos); ``rows`` converts just the rows asked for.
    """

    def __init__(self, ids: np.ndarray, matrix16: np.ndarray, as_of: str | None = None) -> None:
        self.ids = ids
        self.as_of = as_of  # the newest vector's write time (ISO), or None
        self._m16 = matrix16
        self._m32: np.ndarray | None = None
        self._lock = threading.Lock()

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
        return self._m32

    def rows(self, rows) -> np.ndarray:
        """float32 rows ``rows`` without converting the rest."""
        if self._m32 is not None:
            return self._m32[rows]
        return np.asarray(self._m16[rows], dtype=np.float32)

    def row_of(self, photo_id: int) -> int | None:
        i = int(np.searchsorted(self.ids, photo_id))
        return i if i < len(self.ids) and self.ids[i] == photo_id else None


def load_vectors(library: Library, model_key: str, generation: int | None = None) -> VectorSet:
    """All present photos' vectors for ``model_key``, from the vector file when it holds this generation, else
    from the database (and the file is written for next time). ``generation``: the one read before, when the
    caller has read it already."""
    generation = library.vectors_generation() if generation is None else generation
    vector_file = VectorFile(library.vectors_dir, model_key)
    cached = vector_file.load(generation)
    if cached is not None:
        ids, matrix16, as_of = cached
    else:
        as_of = _newest_vector(library, model_key)  # before the rows: a later write is re-read, never missed
        ids, matrix16 = _read_database(library, model_key)
        if len(ids):
            vector_file.save(ids, matrix16, generation, as_of)
    if not len(ids):
        return VectorSet(np.zeros(0, np.int64), np.zeros((0, 0), np.float16))
    return VectorSet(ids, matrix16, as_of)


def _read_database(library: Library, model_key: str) -> tuple[np.ndarray, np.ndarray]:
    with library.session() as s:
        rows = s.execute(
            select(Embedding.photo_id, Embedding.vector, Embedding.dim)
            .join(Photo, Photo.id == Embedding.photo_id)
            .where(Embedding.model_key == model_key, Photo.missing_since.is_(None))
            .order_by(Embedding.photo_id)
        ).all()
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float16)
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    return ids, np.frombuffer(b"".join(r[1] for r in rows), "<f2").reshape(len(rows), rows[0][2])


class VectorIndex:
    """Top-k inner-product search over one model's vectors.

    ``background=True`` (the app): the graph is loaded, updated or built on a
    thread of its own and searches answer exactly meanwhile. Otherwise (the CLI,
    one search per process) the first search that needs the graph gets it first.
    """

    def __init__(self, library: Library, model_key: str, hnsw_min_size: int, background: bool = False) -> None:
        self.library = library
        self.model_key = model_key
        self.hnsw_min_size = hnsw_min_size
        self.background = background
        # Read before the vectors: if they change meanwhile, the graph records the older state and is updated later.
        self.generation = library.vectors_generation()
        self.vectors = load_vectors(library, model_key, self.generation)
        self.graph = SavedGraph(library.vectors_dir, model_key)
        self._hnsw = None
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
        """How the next search runs: "hnsw", "exact", or "exact" while a background graph gets ready."""
        return "exact" if self.mode == "hnsw" and self.background and not self.graph_ready else self.mode

    def search(self, query: np.ndarray, k: int, allow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (photo ids, scores), best first. ``allow``: optional bool mask over ``vectors.ids``."""
        n = len(self.vectors)
        k = min(k, n if allow is None else int(allow.sum()))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.mode == "hnsw":
            if self.background and self._hnsw is None:
                self.prepare_graph()
            else:
                return self._hnsw_search(query, k, allow)
        scores = self.vectors.matrix @ query.astype(np.float32)
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

    def _hnsw_search(self, query, k, allow):
        index = self.hnsw()
        filt: Callable[[int], bool] | None = None
        if allow is not None:
            allowed = set(self.vectors.ids[allow].tolist())
            filt = allowed.__contains__
        index.set_ef(max(HNSW_EF_SEARCH, k))
        labels, distances = index.knn_query(query.astype(np.float32)[None, :], k=k, filter=filt)
        return labels[0].astype(np.int64), (1.0 - distances[0]).astype(np.float32)

    def hnsw(self):
        """The graph for these vectors: the saved one, brought up to date, or built (and saved)."""
        if self._hnsw is None:
            with self._graph_lock:  # one opener; a caller that needs the graph now waits for the thread's
                if self._hnsw is None:
                    snap = Snapshot(self.vectors, self.generation)
                    self._hnsw = self.graph.open(snap, self._changed_since)
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
