"""The saved HNSW graph of one model's vectors: used when current, updated in place when stale, rebuilt when
damaged or worn, and its search depth calibrated on the library's own vectors.

The engine is usearch: it stores the vectors at bf16 (1 GB at 1M photos of 512-d, where hnswlib's fp32 copy
alone took 2 GB: ``docs/perf.md``, *A million photos*), ships wheels for every platform (hnswlib builds from
source) and removes elements for real. Results are re-scored from the library's own fp16 vectors, so the
graph's lower precision only decides which photos are candidates, never their scores.

Two files per model key in the library's vectors folder: ``KEY.hnsw`` (usearch's index, which holds the photo
ids as its keys) and ``KEY.json``, the manifest, written last. The manifest names the vector generation and the
newest embedding time (``as_of``) the graph holds, the calibrated search depth, and a sampled digest of the
index. A kill during a save leaves a temp file or a manifest whose digest no longer matches: detected, never
served.

A stale but intact graph is brought up to date instead of rebuilt: photos added since are added, photos gone
are removed, photos whose vector changed (embedded again after ``as_of``) are removed and added again. Removed
elements leave holes in the graph's links; when they pass ``REBUILD_DELETED_SHARE`` of it, it is rebuilt.

Search depth (``ef``): HNSW finds the true neighbours of a query that looks like the photos (another photo)
at a small depth, but not those of a text query, which lies elsewhere on the sphere (the modality gap): at 1M
photos a fixed ef=200 found 0.49 of the true top-10, and even ef=2048 only 0.97 at 12 ms. Two things fix it:

- each search also walks from the query moved across the gap (the text probes' mean minus the photos', which
  is one direction for a given model), where the graph's links, made between photos, lead to the query's
  matches; the candidates of both walks are re-scored exactly (``Graph.candidates``);
- after a build, and again when the library has grown by a fifth, ``calibrate`` measures recall@10 against
  exact search for probe queries (text prompts encoded by the model when the caller has one, otherwise
  off-manifold stand-ins, plus perturbed photos) over a ladder of depths and keeps the smallest that reaches
  ``RECALL_TARGET`` on both kinds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipdesk.store import derived
from clipdesk.store.derived import model_files, sampled_digest

log = logging.getLogger(__name__)

HNSW_M = 16  # usearch's "connectivity"
HNSW_EF_CONSTRUCTION = 128  # usearch's "expansion_add"
HNSW_EF_SEARCH = 200  # until calibrated
GRAPH_DTYPE = "bf16"
# Rebuild once this share of the graph's elements were removed since its build: holes cost walks and recall.
REBUILD_DELETED_SHARE = 0.25
FORMAT = 3  # 1: one hnswlib file + manifest; 2: hnswlib + ids file; 3: usearch, calibrated ef
BUILD_BLOCK = 50_000
# Elements added per call while searches may be waiting: a call holds the graph's lock (usearch grows its
# storage inside ``add``, which a concurrent search must not see), so this bounds a search's wait.
ADD_CHUNK = 32
EF_LADDER = (32, 48, 64, 96, 128, 192, 256, 320, 384, 512, 768, 1024, 1536, 2048)
# Calibrated on ~50 probe queries of each kind, so aim a little above the 0.95 a user's queries should get.
RECALL_TARGET = 0.96
# Candidates asked of the graph per search direction, re-scored exactly: near-ties at the 10th place are common
# (0.002 apart for text queries at 1M photos), and the graph orders them by its bf16 copies.
CANDIDATES_MIN = 64
# ... and at least this many beyond the k asked for, for the same near-ties.
RERANK_EXTRA = 16
RECHECK_GROWTH = 0.2
# With ``defer_save``, an update is saved once the changes kept in memory only reach this share of the graph.
SAVE_PENDING_SHARE = 0.005
PROBE_PHOTOS = 64
CALIBRATION_K = 10


@dataclass
class Snapshot:
    """The vectors a graph is made from (a ``vectors.VectorSet``), and the generation they were read at."""

    vectors: object  # ids (ascending), dim, rows(...), scores_blocked(...), as_of: the newest vector's write time
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
    calibrated: bool = False


class Graph:
    """An HNSW graph over unit vectors, keyed by photo id; safe to search from one thread while another updates.

    ``ef``: the search depth used when a call gives none (the calibrated one, once known)."""

    def __init__(self, index, ef: int = HNSW_EF_SEARCH, gap: np.ndarray | None = None) -> None:
        self._index = index
        self.ef = int(ef)
        self.gap = gap  # text minus photo mean: a text query is also searched from where photos are
        self.is_view = False  # memory-mapped from its file: searched, never changed
        self._lock = threading.Lock()

    @classmethod
    def empty(cls, dim: int) -> Graph:
        from usearch.index import Index

        return cls(Index(ndim=dim, metric="ip", dtype=GRAPH_DTYPE, connectivity=HNSW_M,
                         expansion_add=HNSW_EF_CONSTRUCTION, expansion_search=HNSW_EF_SEARCH))

    @classmethod
    def build(cls, ids: np.ndarray, rows: Callable[[int, int], np.ndarray], dim: int) -> Graph:
        """A graph of ``len(ids)`` vectors; ``rows(start, stop)`` gives them in blocks (no copy of all at once)."""
        graph = cls.empty(dim)
        for start in range(0, len(ids), BUILD_BLOCK):
            stop = min(start + BUILD_BLOCK, len(ids))
            graph._index.add(np.asarray(ids[start:stop], np.uint64), rows(start, stop))
        return graph

    @classmethod
    def restore(cls, path: Path, ef: int = HNSW_EF_SEARCH) -> Graph:
        from usearch.index import Index

        index = Index.restore(str(path))  # ValueError on a file that is not a whole index
        if index is None:
            raise ValueError(f"{path} is not a usearch index")
        return cls(index, ef)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def dim(self) -> int:
        return int(self._index.ndim)

    @property
    def memory_usage(self) -> int:
        return int(self._index.memory_usage)

    def ids(self) -> np.ndarray:
        """The photo ids the graph serves, ascending."""
        return np.sort(np.asarray(self._index.keys, dtype=np.uint64).astype(np.int64))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, np.uint64)
        for start in range(0, len(ids), ADD_CHUNK):
            with self._lock:
                self._index.add(ids[start:start + ADD_CHUNK], vectors[start:start + ADD_CHUNK])
            time.sleep(0)  # usearch adds under the GIL: hand it to a waiting search between chunks

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.uint64)
        for start in range(0, len(ids), 1024):
            with self._lock:
                self._index.remove(ids[start:start + 1024])

    def search(self, queries: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, approximate inner products), one row per query, best first; -1 / -inf where fewer were found."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        with self._lock:
            self._index.expansion_search = max(int(ef or self.ef), k)
            found = self._index.search(queries, k)
        keys, dist = np.asarray(found.keys), np.asarray(found.distances, np.float32)
        if keys.ndim == 1:  # one query: usearch answers with a single list of the neighbours found
            counts = np.array([len(keys)])
            keys = np.pad(keys, (0, k - len(keys)))[None, :]
            dist = np.pad(dist, (0, k - len(dist)))[None, :]
        else:
            counts = np.asarray(found.counts).reshape(-1)
        keys, dist = keys[:, :k], dist[:, :k]
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        ids = np.where(valid, keys.astype(np.int64, copy=False), -1)
        sims = np.full(dist.shape, -np.inf, np.float32)
        sims[valid] = 1.0 - dist[valid]  # usearch leaves the unfilled places undefined
        return ids, sims

    def candidates(self, query: np.ndarray, want: int, ef: int | None = None) -> np.ndarray:
        """Photo ids worth re-scoring for ``query``: the graph's ``want`` nearest, and, when the modality gap is
        known, also those of the query moved across it (where the graph's links lead to its text matches)."""
        q = np.asarray(query, np.float32)[None, :]
        if self.gap is not None:
            moved = q[0] - self.gap
            norm = float(np.linalg.norm(moved))
            if norm > 1e-6:
                q = np.stack([q[0], moved / norm])
        ids, _ = self.search(q, want, ef)
        ids = ids.ravel()
        return np.unique(ids[ids >= 0])

    def save(self, path: str) -> None:
        # No lock: saving reads the graph, as searches do; updates and saves run on one thread, one after the other.
        self._index.save(path)


# The graphs this process has open, by index file: a library that changes is brought up to date in memory (and
# searched meanwhile) instead of read again from disk, and never held twice. A few, for a user switching models.
_LIVE: dict[Path, tuple[Graph, dict]] = {}
_LIVE_MAX = 2
_OPEN_LOCKS: dict[Path, threading.Lock] = {}
_LIVE_LOCK = threading.Lock()


def forget_live() -> None:
    """Drop the graphs held in memory: the next open reads the files, as a new process does."""
    with _LIVE_LOCK:
        _LIVE.clear()


def _remember(path: Path, graph: Graph, manifest: dict) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(path, None)
        _LIVE[path] = (graph, dict(manifest))
        while len(_LIVE) > _LIVE_MAX:
            _LIVE.pop(next(iter(_LIVE)))


class SavedGraph:
    """``probes``: a callable giving text query vectors for calibration (the model's encoding of generic
    prompts), or None where no text encoder is at hand."""

    def __init__(self, directory: Path, model_key: str,
                 probes: Callable[[], np.ndarray | None] | None = None, defer_save: bool = False,
                 mutable: bool = False) -> None:
        self.model_key = model_key
        self.defer_save = defer_save
        self.mutable = mutable  # always in memory, ready for updates, even when the saved graph is current
        self.index_path, self.manifest_path = model_files(directory, model_key, ".hnsw", ".json")
        self.probes = probes
        self.stats = GraphStats()
        self.calibration: dict | None = None

    def open(self, snap: Snapshot, changed_since: Callable[[str], np.ndarray]) -> Graph:
        """The graph for ``snap``: the one in memory or the saved one if current, else updated or built (and saved).

        ``changed_since(as_of)``: ids of photos whose vectors were written after ``as_of``."""
        with _LIVE_LOCK:
            lock = _OPEN_LOCKS.setdefault(self.index_path, threading.Lock())
        with lock:  # one update of a graph at a time, in this process
            return self._open(snap, changed_since)

    def saved_generation(self) -> int | None:
        """The vectors generation the saved graph says it holds (its manifest only: no digest, no load)."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return None
        return manifest.get("generation") if manifest.get("format") == FORMAT else None

    def _current_view(self, snap: Snapshot) -> Graph | None:
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return None
        cal = manifest.get("calibration") or {}
        due = (not cal or (self.probes is not None and cal.get("text_probes") != "model")
               or len(snap.ids) >= cal.get("count", 0) * (1 + RECHECK_GROWTH))
        if due or manifest.get("generation") != snap.generation or manifest.get("count") != len(snap.ids):
            return None
        view = self.view(snap.vectors.dim)
        if view is not None:
            self.calibration = cal
        return view

    def view(self, dim: int) -> Graph | None:
        """The saved graph memory-mapped (read-only, at once), if its manifest and digest vouch for it."""
        from usearch.index import Index

        try:
            manifest = json.loads(self.manifest_path.read_text())
            if (manifest.get("format") != FORMAT or manifest.get("dim") != dim
                    or manifest.get("digest") != sampled_digest(self.index_path)):
                return None
            index = Index.restore(str(self.index_path), view=True)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError):
            return None
        if index is None or len(index) != manifest.get("count"):
            return None
        graph = Graph(index, int(manifest.get("ef") or HNSW_EF_SEARCH), _gap_of(manifest.get("calibration")))
        graph.is_view = True
        return graph

    def live(self) -> Graph | None:
        """The graph this process has in memory for this file (perhaps a generation behind, or being updated)."""
        with _LIVE_LOCK:
            found = _LIVE.get(self.index_path)
        return found[0] if found is not None else None

    def _open(self, snap: Snapshot, changed_since) -> Graph:
        self.stats = GraphStats()
        with _LIVE_LOCK:
            live = _LIVE.get(self.index_path)
        if live is None and not self.mutable:
            # Current on disk: served memory-mapped, at once. Loading 1.3 GB at 1M photos takes seconds, and
            # usearch loads (and saves) under the GIL, so every Python thread, the GUI's included, would wait.
            # Only an update needs the graph in memory.
            view = self._current_view(snap)
            if view is not None:
                return view
        saved = (live[0], dict(live[1])) if live is not None and live[0].dim == snap.vectors.dim else self._load(snap)
        if saved is not None:
            graph, manifest = saved
            self.calibration = manifest.get("calibration")
            if manifest["generation"] == snap.generation and len(graph) == len(snap.ids):
                if self._calibrate_if_due(graph, snap):
                    self._save(graph, snap, manifest["deleted"])
                elif live is None:
                    _remember(self.index_path, graph, manifest)
                return graph
            deleted = self._update(graph, manifest, snap, changed_since)
            if deleted is not None:
                recalibrated = self._calibrate_if_due(graph, snap)
                pending = manifest.get("pending", 0) + self.stats.added + self.stats.removed + self.stats.updated
                if self.defer_save and not recalibrated and pending < SAVE_PENDING_SHARE * len(graph):
                    # Saving holds the interpreter for a second or more at 1M photos (usearch writes under the
                    # GIL), and searches would wait: a small update stays in memory, and a new process re-applies
                    # it from the saved graph's older state, as it would after a crash.
                    _remember(self.index_path, graph, {**self._manifest(graph, snap, deleted), "pending": pending})
                else:
                    self._save(graph, snap, deleted)
                return graph
        graph = self._build(snap)
        self.calibration = None
        self._calibrate_if_due(graph, snap)
        self._save(graph, snap, 0)
        return graph

    # -- the steps -------------------------------------------------------------

    def _load(self, snap: Snapshot) -> tuple[Graph, dict] | None:
        try:
            manifest = json.loads(self.manifest_path.read_text())
            if (manifest.get("format") != FORMAT or manifest.get("model_key") != self.model_key
                    or manifest.get("dim") != snap.vectors.dim
                    or manifest.get("digest") != sampled_digest(self.index_path)):
                return None
            graph = Graph.restore(self.index_path, int(manifest.get("ef") or HNSW_EF_SEARCH))
            graph.gap = _gap_of(manifest.get("calibration"))
            if len(graph) != manifest["count"] or graph.dim != snap.vectors.dim:
                return None
            manifest["deleted"] = int(manifest.get("deleted", 0))
        except (OSError, ValueError, RuntimeError, KeyError, TypeError):
            return None
        return graph, manifest

    def _update(self, graph: Graph, manifest: dict, snap: Snapshot, changed_since) -> int | None:
        """Bring ``graph`` to ``snap`` in place; returns the removals since its build, or None when a rebuild is
        due instead."""
        if manifest.get("as_of") is None:
            return None  # no record of when its vectors were written: changed ones cannot be found
        live = graph.ids()
        gone = np.setdiff1d(live, snap.ids, assume_unique=True)
        new = np.setdiff1d(snap.ids, live, assume_unique=True)
        changed = np.intersect1d(changed_since(manifest["as_of"]), np.intersect1d(live, snap.ids))
        deleted = manifest["deleted"] + len(gone) + len(changed)
        if deleted > REBUILD_DELETED_SHARE * max(len(snap.ids) + deleted, 1):
            return None
        graph.remove(np.union1d(gone, changed))
        put = np.union1d(new, changed)
        for start in range(0, len(put), BUILD_BLOCK):
            block = put[start:start + BUILD_BLOCK]
            graph.add(block, snap.vectors.rows(np.searchsorted(snap.ids, block)))
        self.stats = GraphStats(False, len(new), len(gone), len(changed))
        return deleted

    def _build(self, snap: Snapshot) -> Graph:
        vectors = snap.vectors
        graph = Graph.build(snap.ids, lambda a, b: vectors.rows(np.arange(a, b)), vectors.dim)
        self.stats = GraphStats(built=True, added=len(snap.ids))
        return graph

    def _calibrate_if_due(self, graph: Graph, snap: Snapshot) -> bool:
        cal = self.calibration
        upgrade = self.probes is not None and cal is not None and cal.get("text_probes") != "model"
        if cal is not None and not upgrade and len(snap.ids) < cal.get("count", 0) * (1 + RECHECK_GROWTH):
            graph.ef, graph.gap = int(cal["ef"]), _gap_of(cal)
            return False
        probes = None
        if self.probes is not None:
            try:
                probes = self.probes()
            except Exception as exc:  # no text encoder after all: stand-ins, and the model's probes next time
                log.warning("search graph for %s: no text probes (%s); calibrating on stand-ins", self.model_key, exc)
        self.calibration = calibrate(graph, snap.vectors, probes)  # sets graph.ef and graph.gap
        self.stats.calibrated = True
        log.info("search graph for %s: ef %d (recall@10 text %.3f, photos %.3f, %s probes)", self.model_key,
                 graph.ef, self.calibration["recall_text"], self.calibration["recall_image"],
                 self.calibration["text_probes"])
        return True

    def _save(self, graph: Graph, snap: Snapshot, deleted: int) -> None:
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        derived.sweep_temp_files(self.index_path, self.manifest_path)
        self.index_path.with_suffix(".ids.npy").unlink(missing_ok=True)  # format 2's ids file: the keys say it now
        derived.atomic_write(self.index_path, graph.save)
        manifest = {**self._manifest(graph, snap, deleted), "digest": sampled_digest(self.index_path)}
        derived.atomic_write(self.manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(manifest)))
        _remember(self.index_path, graph, manifest)

    def _manifest(self, graph: Graph, snap: Snapshot, deleted: int) -> dict:
        return {"format": FORMAT, "engine": "usearch", "model_key": self.model_key,
                "generation": snap.generation, "as_of": snap.as_of, "count": len(graph),
                "dim": snap.vectors.dim, "deleted": int(deleted), "ef": graph.ef, "calibration": self.calibration}


# -- calibration -------------------------------------------------------------------


def photo_probes(vectors, count: int = PROBE_PHOTOS, seed: int = 0) -> np.ndarray:
    """Photo-like queries: library vectors moved off themselves (cosine ~0.9 to the original)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(vectors.ids), size=min(count, len(vectors.ids)), replace=False))
    base = vectors.rows(rows)
    noise = rng.standard_normal(base.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = base + 0.48 * noise
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def off_manifold_probes(vectors, count: int = PROBE_PHOTOS, seed: int = 1) -> np.ndarray:
    """Stand-ins for text queries where no text encoder is at hand: one direction away from the photos, pulled
    part of the way towards a few photos (the shape of a text embedding against image embeddings)."""
    rng = np.random.default_rng(seed)
    away = rng.standard_normal(vectors.dim).astype(np.float32)
    away /= np.linalg.norm(away)
    rows = np.sort(rng.choice(len(vectors.ids), size=min(count, len(vectors.ids)), replace=False))
    q = 0.8 * away[None, :] + 0.5 * vectors.rows(rows)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _gap_of(calibration: dict | None) -> np.ndarray | None:
    gap = (calibration or {}).get("gap")
    return np.asarray(gap, np.float32) if gap else None


def reranked_top(graph: Graph, vectors, query: np.ndarray, k: int, ef: int) -> np.ndarray:
    """The photo ids a search through ``graph`` answers: its candidates, re-scored exactly, best ``k``."""
    cand = graph.candidates(query, max(k + RERANK_EXTRA, CANDIDATES_MIN), ef)
    rows = np.searchsorted(vectors.ids, cand)
    rows = rows[(rows < len(vectors.ids)) & (vectors.ids[np.minimum(rows, len(vectors.ids) - 1)] == cand)]
    scores = vectors.rows(rows) @ np.asarray(query, np.float32)
    return vectors.ids[rows[np.argsort(-scores, kind="stable")[:k]]]


def recall_at(graph: Graph, vectors, queries: np.ndarray, truth: np.ndarray, ef: int, k: int = CALIBRATION_K) -> float:
    return float(np.mean([len(set(reranked_top(graph, vectors, q, k, ef).tolist()) & set(t.tolist())) / len(t)
                          for q, t in zip(queries, truth, strict=True)]))


def calibrate(graph: Graph, vectors, text_probes: np.ndarray | None) -> dict:
    """The smallest ef of ``EF_LADDER`` at which recall@10 reaches ``RECALL_TARGET`` for text and photo probes
    (exact search gives the truth); the largest when none does. With the model's text probes, the modality gap
    (their mean minus the photos') is measured too and kept for searching (``Graph.candidates``). Sets the
    graph's ``ef`` and ``gap``; returns what the manifest keeps."""
    k = min(CALIBRATION_K, len(vectors.ids))
    from_model = text_probes is not None and len(text_probes) > 0
    photos = photo_probes(vectors)
    text = np.asarray(text_probes, np.float32) if from_model else off_manifold_probes(vectors)
    graph.gap = None
    if from_model:
        sample = vectors.rows(np.sort(np.random.default_rng(2).choice(
            len(vectors.ids), size=min(20_000, len(vectors.ids)), replace=False)))
        graph.gap = (text.mean(axis=0) - sample.mean(axis=0)).astype(np.float32)
    kinds = {"text": text, "image": photos}
    truth = {name: vectors.top_exact(q, k) for name, q in kinds.items()}
    chosen, got = EF_LADDER[-1], {}
    for ef in EF_LADDER:
        got = {name: recall_at(graph, vectors, q, truth[name], ef, k) for name, q in kinds.items()}
        if min(got.values()) >= RECALL_TARGET:
            chosen = ef
            break
    else:
        log.warning("search graph: recall@10 %.3f (text) / %.3f (photos) at the deepest ef %d, below %.2f",
                    got["text"], got["image"], chosen, RECALL_TARGET)
    graph.ef = int(chosen)
    return {"ef": int(chosen), "recall_text": got["text"], "recall_image": got["image"], "count": len(vectors.ids),
            "text_probes": "model" if from_model else "stand-in", "target": RECALL_TARGET,
            "gap": None if graph.gap is None else [round(float(x), 6) for x in graph.gap]}
