"""The saved HNSW graph of one model's vectors: used when current, updated in place when stale, rebuilt when
damaged or worn.

Three files per model key in the library's vectors folder: ``KEY.hnsw``
(hnswlib's index), ``KEY.ids.npy`` (the photo ids the graph serves,
ascending: hnswlib keeps deleted labels, so it cannot say this itself) and
``KEY.json``, the manifest, written last. The manifest names the vector
generation and the newest embedding time (``as_of``) the graph holds, and the
digests of the other two files. A kill during a save leaves a temp file or a
manifest whose digests no longer match: detected, never served.

A stale but intact graph is brought up to date instead of rebuilt: photos
added since get ``add_items``, photos gone get ``mark_deleted``, photos whose
vector changed (embedded again after ``as_of``) are added again under their
label, which hnswlib treats as an update (and as an undelete for a photo that
came back). When deleted labels pass ``REBUILD_DELETED_SHARE`` of the graph,
it is rebuilt: deleted elements still take part in the graph's walks.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 200
# Rebuild once this share of the graph's elements are deleted labels: their walks slow queries and cost recall.
REBUILD_DELETED_SHARE = 0.25
FORMAT = 2  # 1: one file + manifest, no ids file (rebuilt on first use)
STALE_TEMP_S = 3600
BUILD_BLOCK = 50_000


@dataclass
class Snapshot:
    """The vectors a graph is made from (a ``vectors.VectorSet``), and the generation they were read at."""

    vectors: object  # ids (ascending), dim, rows(...), matrix, as_of: the newest vector's write time (ISO)
    generation: int

    @property
    def ids(self) -> np.ndarray:
        return self.vectors.ids

    @property
    def as_of(self) -> str | None:
        return self.vectors.as_of


@dataclass
class GraphStats:
    built: bool = False  # a full build happened
    added: int = 0
    removed: int = 0
    updated: int = 0


def model_files(directory: Path, model_key: str, *suffixes: str) -> list[Path]:
    """The paths of a model's derived files in ``directory``: its key made safe as a file name, plus each suffix."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_key)
    return [directory / f"{safe}{suffix}" for suffix in suffixes]


class SavedGraph:
    def __init__(self, directory: Path, model_key: str) -> None:
        self.model_key = model_key
        self.index_path, self.ids_path, self.manifest_path = model_files(directory, model_key,
                                                                         ".hnsw", ".ids.npy", ".json")
        self.stats = GraphStats()

    def open(self, snap: Snapshot, changed_since: Callable[[str], np.ndarray]):
        """The graph for ``snap``: the saved one if current, else updated or built (and saved).

        ``changed_since(as_of)``: ids of photos whose vectors were written after ``as_of``."""
        self.stats = GraphStats()
        saved = self._load(snap)
        if saved is not None:
            index, live, manifest = saved
            if manifest["generation"] == snap.generation and np.array_equal(live, snap.ids):
                return index
            if self._update(index, live, manifest, snap, changed_since):
                self._save(index, snap)
                return index
        index = self._build(snap)
        self._save(index, snap)
        return index

    # -- the three steps -------------------------------------------------------

    def _load(self, snap: Snapshot):
        import hnswlib

        try:
            manifest = json.loads(self.manifest_path.read_text())
            if (manifest.get("format") != FORMAT or manifest.get("model_key") != self.model_key
                    or manifest.get("dim") != snap.vectors.dim
                    or manifest.get("digest") != digest(self.index_path)
                    or manifest.get("ids_digest") != digest(self.ids_path)):
                return None
            live = np.load(self.ids_path, allow_pickle=False)
            index = hnswlib.Index(space="ip", dim=snap.vectors.dim)
            index.load_index(str(self.index_path), max_elements=max(manifest["elements"], 1))
        except (OSError, ValueError, RuntimeError, KeyError, TypeError):
            return None
        return index, live, manifest

    def _update(self, index, live: np.ndarray, manifest: dict, snap: Snapshot, changed_since) -> bool:
        """Bring ``index`` to ``snap`` in place; False when a rebuild is due instead."""
        if manifest.get("as_of") is None:
            return False  # no record of when its vectors were written: changed ones cannot be found
        gone = np.setdiff1d(live, snap.ids, assume_unique=True)
        new = np.setdiff1d(snap.ids, live, assume_unique=True)
        labels = np.union1d(np.asarray(index.get_ids_list(), np.int64), new)  # deleted labels keep their slot
        if len(labels) - len(snap.ids) > REBUILD_DELETED_SHARE * max(len(labels), 1):
            return False
        changed = np.intersect1d(changed_since(manifest["as_of"]), np.intersect1d(live, snap.ids))
        for pid in gone.tolist():
            index.mark_deleted(int(pid))
        put = np.union1d(new, changed)
        if len(put):
            rows = np.searchsorted(snap.ids, put)
            index.resize_index(max(index.get_max_elements(), len(labels)))
            # An existing label is updated in place, and undeleted if it was deleted (a photo that came back).
            index.add_items(snap.vectors.rows(rows), put)
        self.stats = GraphStats(False, len(new), len(gone), len(changed))
        return True

    def _build(self, snap: Snapshot):
        import hnswlib

        n, dim = len(snap.ids), snap.vectors.dim
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=max(n, 1), M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION, random_seed=0)
        for start in range(0, n, BUILD_BLOCK):  # in blocks: no fp32 copy of every vector at once
            index.add_items(snap.vectors.rows(np.arange(start, min(start + BUILD_BLOCK, n))),
                            snap.ids[start:start + BUILD_BLOCK])
        self.stats = GraphStats(built=True, added=n)
        return index

    def _save(self, index, snap: Snapshot) -> None:
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        self._sweep_temp_files()
        atomic_write(self.index_path, lambda tmp: index.save_index(tmp))
        atomic_write(self.ids_path, lambda tmp: _save_npy(tmp, snap.ids))
        manifest = {"format": FORMAT, "model_key": self.model_key, "generation": snap.generation,
                    "as_of": snap.as_of, "count": len(snap.ids), "dim": snap.vectors.dim,
                    "elements": int(index.get_max_elements()),
                    "digest": digest(self.index_path), "ids_digest": digest(self.ids_path)}
        atomic_write(self.manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(manifest)))


    def _sweep_temp_files(self) -> None:
        """Remove temp files a killed save left (the app's graph thread dies with the app); an hour old at least,
        so that another process's save in progress is left alone."""
        cutoff = time.time() - STALE_TEMP_S
        for path in (self.index_path, self.ids_path, self.manifest_path):
            for tmp in path.parent.glob(f"{glob.escape(path.name)}*.tmp"):
                try:
                    if tmp.stat().st_mtime < cutoff:
                        tmp.unlink()
                except OSError:
                    pass


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
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
