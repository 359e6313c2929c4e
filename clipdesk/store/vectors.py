"""Vectors for search: an exact in-RAM matrix, or an HNSW index when large.

The database is the source of truth. The HNSW file is derived data: it is
saved atomically beside the database with a manifest naming the database
generation it was built from, and rebuilt whenever it is missing, stale or
fails its checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from clipdesk.store.db import Library
from clipdesk.store.models import Embedding, Photo

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 200


@dataclass
class VectorSet:
    ids: np.ndarray  # int64 photo ids, ascending
    matrix: np.ndarray  # float32, one unit row per id

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self, photo_id: int) -> int | None:
        i = int(np.searchsorted(self.ids, photo_id))
        return i if i < len(self.ids) and self.ids[i] == photo_id else None


def load_vectors(library: Library, model_key: str) -> VectorSet:
    """All present photos' vectors for ``model_key`` (fp16 on disk, fp32 in RAM:
    numpy's fp16 matmul is ~20x slower)."""
    with library.session() as s:
        rows = s.execute(
            select(Embedding.photo_id, Embedding.vector, Embedding.dim)
            .join(Photo, Photo.id == Embedding.photo_id)
            .where(Embedding.model_key == model_key, Photo.missing_since.is_(None))
            .order_by(Embedding.photo_id)
        ).all()
    if not rows:
        return VectorSet(np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
    dim = rows[0][2]
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    matrix = np.frombuffer(b"".join(r[1] for r in rows), "<f2").reshape(len(rows), dim).astype(np.float32)
    return VectorSet(ids, matrix)


class VectorIndex:
    """Top-k inner-product search over one model's vectors."""

    def __init__(self, library: Library, model_key: str, hnsw_min_size: int) -> None:
        self.library = library
        self.model_key = model_key
        self.hnsw_min_size = hnsw_min_size
        self.vectors = load_vectors(library, model_key)
        self._hnsw = None

    @property
    def mode(self) -> str:
        return "hnsw" if len(self.vectors) >= max(1, self.hnsw_min_size) else "exact"

    def search(self, query: np.ndarray, k: int, allow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (photo ids, scores), best first. ``allow``: optional bool mask over ``vectors.ids``."""
        n = len(self.vectors)
        k = min(k, n if allow is None else int(allow.sum()))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.mode == "exact":
            scores = self.vectors.matrix @ query.astype(np.float32)
            if allow is not None:
                scores = np.where(allow, scores, -np.inf)
            return self._top(np.arange(n), scores, k)
        return self._hnsw_search(query, k, allow)

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

    # -- the saved HNSW index -------------------------------------------------

    def _paths(self) -> tuple[Path, Path]:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model_key)
        base = self.library.vectors_dir / safe
        return base.with_suffix(".hnsw"), base.with_suffix(".json")

    def hnsw(self):
        if self._hnsw is None:
            self._hnsw = self._load_hnsw() or self._build_hnsw()
        return self._hnsw

    def _load_hnsw(self):
        import hnswlib

        index_path, manifest_path = self._paths()
        try:
            manifest = json.loads(manifest_path.read_text())
            if (
                manifest.get("model_key") != self.model_key
                or manifest.get("generation") != self.library.vectors_generation()
                or manifest.get("count") != len(self.vectors)
                or manifest.get("digest") != _digest(index_path)
            ):
                return None
            index = hnswlib.Index(space="ip", dim=self.vectors.matrix.shape[1])
            index.load_index(str(index_path), max_elements=len(self.vectors))
        except (OSError, ValueError, RuntimeError, KeyError):
            return None
        return index

    def _build_hnsw(self):
        import hnswlib

        generation = self.library.vectors_generation()
        n, dim = self.vectors.matrix.shape
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=max(n, 1), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, random_seed=0)
        index.add_items(self.vectors.matrix, self.vectors.ids)
        index_path, manifest_path = self._paths()
        index_path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(index_path, lambda tmp: index.save_index(tmp))
        manifest = {"model_key": self.model_key, "generation": generation, "count": n, "dim": dim,
                    "digest": _digest(index_path)}
        _atomic_write(manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(manifest)))
        return index


def _digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write via a temp file in the same folder, fsync, then rename over."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
