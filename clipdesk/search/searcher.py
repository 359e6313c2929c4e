"""Text, image and combined search with filters and a relevance cut-off.

Query syntax (``clipdesk search``): words form one phrase; ``-word`` or
``-"two words"`` is a negative; ``+"phrase"`` adds a separate positive;
``term:0.5`` (or ``"a phrase":2``) sets a weight. Image terms come from
files or library photo ids. The query vector is the weighted sum of the
positives minus the weighted negatives.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import select

from clipdesk.engine.base import Encoder
from clipdesk.errors import QueryError
from clipdesk.store.db import Library
from clipdesk.store.models import Photo
from clipdesk.store.vectors import VectorIndex

# Generic prompts every photo matches a little: a text hit must beat them to
# count as relevant (the "teach CLIP to say no" idea, model-agnostic).
NULL_PROMPTS = ("a photo", "a picture", "an image", "a photo of something", "a snapshot")
# For image queries: a hit must stand this many standard deviations above the
# query's mean similarity over the whole library.
IMAGE_Z_CUTOFF = 3.0
# Below this many photos the distribution cannot be estimated: no image cut-off.
IMAGE_CUTOFF_MIN_LIBRARY = 30
# Caption keywords: a photo whose caption holds every content word of the text
# query gains this much similarity (about the gap between a good and a middling
# CLIP match), and counts as relevant; partial matches gain in proportion.
CAPTION_BONUS = 0.05
_WEIGHT = re.compile(r"^(?P<body>.*?):(?P<w>[0-9]*\.?[0-9]+)$")


@dataclass
class Term:
    kind: str  # text | file | photo
    value: str | int
    weight: float = 1.0
    negative: bool = False


@dataclass
class Filters:
    folder: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    types: tuple[str, ...] = ()  # Pillow format names or extensions, case-insensitive
    photo_ids: frozenset[int] | None = None  # e.g. the photos carrying a label

    def active(self) -> bool:
        return bool(self.folder or self.date_from or self.date_to or self.types or self.photo_ids is not None)


@dataclass
class Hit:
    photo_id: int
    path: str
    score: float
    relevant: bool
    caption_match: float = 0.0  # share of the query's words found in the photo's captions


@dataclass
class SearchResult:
    hits: list[Hit]
    no_good_match: bool
    mode: str
    considered: int
    terms: list[Term] = field(default_factory=list)


def parse_text_query(text: str, require_positive: bool = True) -> list[Term]:
    """Parse the query syntax above into terms.

    ``require_positive=False``: only negatives are fine, because the query
    has a positive elsewhere (an image: ``similar 42 --text -people``)."""
    try:
        tokens = shlex.split(text, posix=True)
    except ValueError as exc:
        raise QueryError(f"Cannot read the query ({exc}); check the quotes.") from None
    phrase: list[str] = []
    terms: list[Term] = []
    for token in tokens:
        sign = token[0] if token[0] in "+-" and len(token) > 1 else ""
        body = token[1:] if sign else token
        weight = 1.0
        m = _WEIGHT.match(body)
        if m and m.group("body"):
            body, weight = m.group("body"), float(m.group("w"))
        if sign or weight != 1.0:
            terms.append(Term("text", body, weight, negative=sign == "-"))
        else:
            phrase.append(body)
    if phrase:
        terms.insert(0, Term("text", " ".join(phrase)))
    if require_positive and terms and not any(not t.negative for t in terms):
        raise QueryError("The query has only negatives; say what to look for too (e.g. 'beach -people').")
    return terms


class Searcher:
    """Runs queries against one library with one model."""

    def __init__(self, library: Library, engine: Encoder, hnsw_min_size: int, cutoff: bool = True) -> None:
        """``cutoff=False`` turns the automatic relevance cut-off off: used for
        the test-only random model, whose scores carry no meaning to cut on."""
        self.library = library
        self.engine = engine
        self.cutoff = cutoff
        self.index = VectorIndex(library, engine.key, hnsw_min_size)
        self._null: np.ndarray | None = None

    def search(self, terms: list[Term], k: int = 20, filters: Filters | None = None,
               min_score: float | None = None, show_all: bool = False) -> SearchResult:
        if not terms:
            raise QueryError("Empty query.")
        vectors = self.index.vectors
        if len(vectors) == 0:
            return SearchResult([], True, self.index.mode, 0, terms)
        query, positive_text = self._query_vector(terms)
        allow = self._allow_mask(terms, filters)
        ids, scores, matched = self._search_with_captions(terms, query, k, allow)
        relevant = self._relevance(query, positive_text, ids, scores, terms, min_score) | (matched >= 1.0)
        paths = self._paths(ids)
        hits = [Hit(int(i), paths[int(i)], float(s), bool(r), float(m))
                for i, s, r, m in zip(ids, scores, relevant, matched, strict=True)]
        if not show_all:
            hits = [h for h in hits if h.relevant]
        considered = len(vectors) if allow is None else int(allow.sum())
        return SearchResult(hits, not any(relevant), self.index.mode, considered, terms)

    # -- internals ---------------------------------------------------------------

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
                vecs[id(t)] = self.index.vectors.matrix[row]
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
        if len(ids) == 0:
            return np.zeros(0, bool)
        if min_score is not None:
            return scores >= min_score
        if not self.cutoff:
            return np.ones(len(ids), bool)
        matrix = self.index.vectors.matrix
        rows = np.searchsorted(self.index.vectors.ids, ids)
        if positive_text is not None:
            # Text-only query: beat the generic prompts on the positive part.
            null = self._null_vectors()
            cand = matrix[rows]
            return (cand @ positive_text) > (cand @ null.T).max(axis=1)
        # Any image term: stand out from this query's library-wide distribution.
        if len(matrix) < IMAGE_CUTOFF_MIN_LIBRARY:
            return np.ones(len(ids), bool)
        all_scores = matrix @ query
        mu, sigma = float(all_scores.mean()), float(all_scores.std())
        return scores >= mu + IMAGE_Z_CUTOFF * max(sigma, 1e-6)

    def _search_with_captions(self, terms, query, k, allow):
        """Vector search with a bonus for caption words: ids, scores, share of the words matched.

        Photos whose captions hold every word are boosted inside the vector
        search (so they can rise from anywhere in the library); partial
        matches then re-rank the photos found.
        """
        from clipdesk.captions.store import full_matches, partial_matches, query_words

        words = query_words(" ".join(str(t.value) for t in terms if t.kind == "text" and not t.negative))
        full = full_matches(self.library, words)
        boost = None
        if len(full):
            boost = CAPTION_BONUS * np.isin(self.index.vectors.ids, full).astype(np.float32)
        ids, scores = self.index.search(query, k, allow, boost)
        matched = np.isin(ids, full).astype(np.float64)
        partial = partial_matches(self.library, words, ids[matched < 1])
        if partial:
            extra = np.fromiter((partial.get(int(i), 0.0) for i in ids), np.float64, len(ids))
            matched += extra
            scores = scores + CAPTION_BONUS * extra
            order = np.argsort(-scores, kind="stable")
            ids, scores, matched = ids[order], scores[order], matched[order]
        return ids, scores, matched

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

    def _paths(self, ids: np.ndarray) -> dict[int, str]:
        if len(ids) == 0:
            return {}
        with self.library.session() as s:
            return dict(s.execute(select(Photo.id, Photo.path).where(Photo.id.in_([int(i) for i in ids]))).all())


def filter_photo_ids(library: Library, f: Filters) -> np.ndarray:
    """Ids of present photos that pass ``f`` (folder, dates taken, types, id set)."""
    stmt = select(Photo.id, Photo.path, Photo.format).where(Photo.missing_since.is_(None))
    if f.date_from:
        stmt = stmt.where(Photo.taken_at >= f.date_from)
    if f.date_to:
        stmt = stmt.where(Photo.taken_at <= f.date_to)
    prefix = os.path.join(os.path.abspath(f.folder), "") if f.folder else None
    types = {t.lower().lstrip(".") for t in f.types}
    types |= {"jpeg" for t in types if t in ("jpg", "jpe")}
    keep = []
    with library.session() as s:
        for pid, path, fmt in s.execute(stmt):
            if f.photo_ids is not None and pid not in f.photo_ids:
                continue
            if prefix and not path.startswith(prefix):
                continue
            if types and fmt.lower() not in types and os.path.splitext(path)[1].lower().lstrip(".") not in types:
                continue
            keep.append(pid)
    return np.asarray(keep, np.int64)
