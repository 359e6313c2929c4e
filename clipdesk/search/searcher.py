"""Text, image and combined search: one ranking over CLIP and the keyword signals, a relevance cut-off.

Image terms come from files or library photo ids. The query vector is the
weighted sum of the positives minus the weighted negatives. CLIP's top
candidates and every photo a keyword signal names form the pool that
``fusion.fuse`` ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import select

from clipdesk.engine.base import Encoder
from clipdesk.errors import QueryError
from clipdesk.search.fusion import fuse
from clipdesk.search.keywords import KeywordSignals
from clipdesk.search.probes import text_probes
from clipdesk.search.query import Filters, Term, filter_photo_ids
from clipdesk.store.db import Library
from clipdesk.store.models import Photo
from clipdesk.store.vectors import VectorIndex

# Generic prompts every photo matches a little: a text hit must beat them to
# count as relevant (the "teach CLIP to say no" idea, model-agnostic).
NULL_PROMPTS = ("a photo", "a picture", "an image", "a photo of something", "a snapshot")
# For image queries: a hit must stand this many standard deviations above the
# query's mean similarity over the whole library.
IMAGE_Z_CUTOFF = 3.0
# Below this many photos the distribution cannot be estimated: no image cut-off. Above IMAGE_CUTOFF_SAMPLE it is
# estimated from that many photos (the mean and spread of 20,000 scores are as good as those of a million).
IMAGE_CUTOFF_MIN_LIBRARY = 30
IMAGE_CUTOFF_SAMPLE = 20_000
# CLIP's share of the pool: this many candidates per result asked for, at least CLIP_POOL_MIN and at most
# CLIP_POOL_EXTRA beyond the results asked for. Fusion can lift a photo that CLIP ranks this deep, and caption
# words give partial shares to these photos.
CLIP_POOL_PER_RESULT = 5
CLIP_POOL_MIN = 200
CLIP_POOL_EXTRA = 1000
SORTS = ("relevance", "date")
PRESENCE_SLACK = 20  # hits looked up beyond k, for the few a stale vector set may hold that are gone


@dataclass
class Hit:
    photo_id: int
    path: str
    score: float  # CLIP's cosine similarity to the query
    relevant: bool
    fused: float = 0.0  # the fused rank score the order comes from
    why: list[dict] = field(default_factory=list)  # what matched, strongest first: [{"source": "ocr", "text": ...}]
    taken_at: datetime | None = None


@dataclass
class SearchResult:
    hits: list[Hit]
    no_good_match: bool
    mode: str
    considered: int
    terms: list[Term] = field(default_factory=list)


class Searcher:
    """Runs queries against one library with one model."""

    def __init__(self, library: Library, engine: Encoder, hnsw_min_size: int, cutoff: bool = True,
                 background: bool = False) -> None:
        """``cutoff=False`` turns the automatic relevance cut-off off: used for
        the test-only random model, whose scores carry no meaning to cut on.
        ``background=True`` (the app): the search graph is made ready on a
        thread of its own while searches answer exactly."""
        self.library = library
        self.engine = engine
        self.cutoff = cutoff
        # The app's engine brings its own probes (encoded on the inference lane); otherwise encode them here.
        self.index = VectorIndex(library, engine.key, hnsw_min_size, background=background,
                                 probes=getattr(engine, "probes", None) or text_probes(engine))
        self._null: np.ndarray | None = None

    def search(self, terms: list[Term], k: int = 20, filters: Filters | None = None,
               min_score: float | None = None, show_all: bool = False, sort: str = "relevance") -> SearchResult:
        """The ``k`` best photos (relevant ones only, unless ``show_all``), in fused order or,
        with ``sort="date"``, the same photos newest first (undated last)."""
        if not terms:
            raise QueryError("Empty query.")
        if sort not in SORTS:
            raise QueryError(f"Sort by {' or '.join(SORTS)}, not {sort!r}.")
        vectors = self.index.vectors
        if len(vectors) == 0:
            return SearchResult([], True, self.index.search_mode, 0, terms)
        query, positive_text = self._query_vector(terms)
        allow = self._allow_mask(terms, filters)
        mode = self.index.search_mode  # before searching: a background graph may be ready by the end
        pool, clip_scores, keywords = self._pool(terms, query, k, allow)
        fused = fuse(pool, clip_scores, keywords.shares)
        ids, scores = fused.ids, fused.clip
        relevant = self._relevance(query, positive_text, ids, scores, terms, min_score)
        if positive_text is not None:
            # A text query's words found in a photo make it relevant; with an image in the query ("like this,
            # at night") the words only rank, or every photo captioned "night" would count as like the image.
            full = keywords.full_hits()
            relevant |= np.fromiter((i in full for i in ids.tolist()), bool, len(ids))
        keep = np.arange(len(ids)) if show_all else np.flatnonzero(relevant)
        facts = self._facts([int(i) for i in ids[keep[:k + PRESENCE_SLACK]]])
        # Present photos only: vectors a generation behind (a large library's, while the new ones are read) may
        # still hold a photo moved to the trash since.
        keep = keep[np.fromiter((int(i) in facts for i in ids[keep]), bool, len(keep))][:k] if len(keep) else keep
        shown = [int(i) for i in ids[keep]]
        why = keywords.explain(shown)
        hits = []
        for j in keep.tolist():
            pid = int(ids[j])
            entries = [*why.get(pid, []), {"source": "clip", "score": round(float(scores[j]), 4)}]
            entries.sort(key=lambda e, parts=fused.parts[j]: -parts.get(e["source"], 0.0))
            hits.append(Hit(pid, facts[pid][0], float(scores[j]), bool(relevant[j]), float(fused.scores[j]),
                            entries, facts[pid][1]))
        if sort == "date":
            hits.sort(key=lambda h: (h.taken_at is None, -(h.taken_at.timestamp() if h.taken_at else 0.0)))
        considered = len(vectors) if allow is None else int(allow.sum())
        return SearchResult(hits, not bool(relevant.any()), mode, considered, terms)

    # -- internals ---------------------------------------------------------------

    def _pool(self, terms, query, k, allow):
        """CLIP's top candidates plus every photo a keyword signal names: ids, CLIP scores, the signals."""
        n_clip = max(min(CLIP_POOL_PER_RESULT * k, k + CLIP_POOL_EXTRA), CLIP_POOL_MIN)
        ids, scores = self.index.search(query, n_clip, allow)
        positive = [t for t in terms if t.kind == "text" and not t.negative]
        vector_ids = self.index.vectors.ids  # ascending: the photos with a vector, present ones only
        allowed = vector_ids if allow is None else vector_ids[allow]
        keywords = KeywordSignals(self.library, " ".join(str(t.value) for t in positive),
                                  [p for t in positive for p in t.phrases], allowed)
        if positive:
            keywords.gather(ids.tolist())
        extra = sorted({pid for hits in keywords.shares.values() for pid in hits} - set(ids.tolist()))
        if extra:
            rows = np.searchsorted(vector_ids, np.asarray(extra, np.int64))
            ids = np.concatenate([ids, np.asarray(extra, np.int64)])
            scores = np.concatenate([scores, self.index.vectors.rows(rows) @ query])
        return ids, scores.astype(np.float64), keywords

    def _query_vector(self, terms: list[Term]) -> tuple[np.ndarray, np.ndarray | None]:
        texts = [t for t in terms if t.kind == "text"]
        files = [t for t in terms if t.kind == "file"]
        vecs: dict[int, np.ndarray] = {}
        if texts:
            for t, v in zip(texts, self.engine.encode_text([str(t.value) for t in texts]), strict=True):
                vecs[id(t)] = v
        if files:
            for t, v in zip(files, self.engine.encode_files([str(t.value) for t in files]), strict=True):
                vecs[id(t)] = v
        for t in terms:
            if t.kind == "photo":
                row = self.index.vectors.row_of(int(t.value))
                if row is None:
                    raise QueryError(f"Photo {t.value} is not indexed with this model.")
                vecs[id(t)] = self.index.vectors.rows([row])[0]
        query = sum((-t.weight if t.negative else t.weight) * vecs[id(t)] for t in terms)
        norm = float(np.linalg.norm(query))
        if norm < 1e-6:
            raise QueryError("The positive and negative parts of the query cancel out.")
        pos_text = [t for t in texts if not t.negative]
        positive_text = None
        if pos_text and len(pos_text) == len([t for t in terms if not t.negative]):
            p = sum(t.weight * vecs[id(t)] for t in pos_text)
            positive_text = p / np.linalg.norm(p)
        return (query / norm).astype(np.float32), positive_text

    def _relevance(self, query, positive_text, ids, scores, terms, min_score) -> np.ndarray:
        """CLIP's verdict on each photo (keyword hits are added by the caller)."""
        if len(ids) == 0:
            return np.zeros(0, bool)
        if min_score is not None:
            return scores >= min_score
        if not self.cutoff:
            return np.ones(len(ids), bool)
        vectors = self.index.vectors
        rows = np.searchsorted(vectors.ids, ids)
        if positive_text is not None:
            # Text-only query: beat the generic prompts on the positive part.
            null = self._null_vectors()
            cand = vectors.rows(rows)
            return (cand @ positive_text) > (cand @ null.T).max(axis=1)
        # Any image term: stand out from this query's library-wide distribution.
        if len(vectors) < IMAGE_CUTOFF_MIN_LIBRARY:
            return np.ones(len(ids), bool)
        if len(vectors) > IMAGE_CUTOFF_SAMPLE:  # a large library: its distribution from a fixed sample
            sample = np.random.default_rng(0).choice(len(vectors), IMAGE_CUTOFF_SAMPLE, replace=False)
            all_scores = vectors.rows(np.sort(sample)) @ query
        else:
            all_scores = vectors.matrix @ query
        mu, sigma = float(all_scores.mean()), float(all_scores.std())
        return scores >= mu + IMAGE_Z_CUTOFF * max(sigma, 1e-6)

    def _null_vectors(self) -> np.ndarray:
        if self._null is None:
            self._null = self.engine.encode_text(list(NULL_PROMPTS))
        return self._null

    def _allow_mask(self, terms: list[Term], filters: Filters | None) -> np.ndarray | None:
        exclude = {int(t.value) for t in terms if t.kind == "photo"}  # never return the query photo itself
        if not exclude and (filters is None or not filters.active()):
            return None
        ids = self.index.vectors.ids
        allow = ~np.isin(ids, np.fromiter(exclude, np.int64, len(exclude)))
        if filters is not None and filters.active():
            allow &= np.isin(ids, filter_photo_ids(self.library, filters))
        return allow

    def _facts(self, ids: list[int]) -> dict[int, tuple[str, datetime | None]]:
        """Path and date taken of the photos shown, present ones only."""
        if not ids:
            return {}
        with self.library.session() as s:
            rows = s.execute(select(Photo.id, Photo.path, Photo.taken_at)
                             .where(Photo.id.in_(ids), Photo.missing_since.is_(None))).all()
        return {pid: (path, taken) for pid, path, taken in rows}
