"""Caption rows: one automatic and one hand-written caption per photo.

A hand-written caption (``source="user"``) is its own row, so automatic runs
(which only ever write ``source="auto"``) can never overwrite it; the user's
caption is the one shown and exported whenever it exists.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import chain

import numpy as np
from sqlalchemy import delete, select

from clipdesk.errors import QueryError
from clipdesk.store.db import Library
from clipdesk.store.models import Caption, Photo, utcnow


@dataclass(frozen=True)
class CaptionInfo:
    text: str
    source: str  # auto | user
    model_key: str | None
    score: float | None
    created_at: datetime


def photo_captions(library: Library, photo_id: int) -> list[CaptionInfo]:
    """The photo's captions, the user's first."""
    with library.session() as s:
        rows = s.scalars(select(Caption).where(Caption.photo_id == photo_id)).all()
    infos = [CaptionInfo(r.text, r.source, r.model_key, r.score, r.created_at) for r in rows]
    return sorted(infos, key=lambda c: c.source != "user")


def best_captions(library: Library, photo_ids=None) -> dict[int, str]:
    """Photo id -> the caption to show or export (the user's when there is one)."""
    stmt = select(Caption.photo_id, Caption.text).order_by((Caption.source == "user").asc())
    if photo_ids is not None:
        stmt = stmt.where(Caption.photo_id.in_(list(photo_ids)))
    with library.session() as s:
        return dict(s.execute(stmt).all())  # later rows (user) win


def set_user_caption(library: Library, photo_id: int, caption: str) -> CaptionInfo | None:
    """Save a hand-written caption; empty text removes it (the automatic one shows again)."""
    caption = " ".join(caption.split())

    def write(s) -> CaptionInfo | None:
        if s.get(Photo, photo_id) is None:
            raise QueryError(f"No photo with id {photo_id} in this library.")
        row = s.scalar(select(Caption).where(Caption.photo_id == photo_id, Caption.source == "user"))
        if not caption:
            if row is not None:
                s.delete(row)
            return None
        if row is None:
            row = Caption(photo_id=photo_id, source="user")
            s.add(row)
        row.text, row.model_key, row.score, row.created_at = caption, None, None, utcnow()
        return CaptionInfo(caption, "user", None, None, row.created_at)

    return library.write(write)


def write_auto_captions(session, results: dict[int, tuple[str, float]], model_key: str) -> None:
    """Upsert automatic captions inside the caller's transaction."""
    existing = {c.photo_id: c for c in session.scalars(
        select(Caption).where(Caption.photo_id.in_(list(results)), Caption.source == "auto"))}
    now = utcnow()
    for pid, (caption, score) in results.items():
        row = existing.get(pid)
        if row is None:
            row = Caption(photo_id=pid, source="auto")
            session.add(row)
        row.text, row.score, row.model_key, row.created_at = caption, score, model_key, now


def delete_auto_captions(library: Library, model_key: str | None = None) -> int:
    """Remove automatic captions (of one model, or all); hand-written ones stay."""
    stmt = delete(Caption).where(Caption.source == "auto")
    if model_key is not None:
        stmt = stmt.where(Caption.model_key == model_key)
    return library.write(lambda s: s.execute(stmt).rowcount)


# -- keyword search over captions (the FTS5 index of migration 0002) ----------------

# Words too common in captions and queries to say anything about a photo.
_STOPWORDS = frozenset(
    "a an the of on in at to and or with for by from is are its it this that some "
    "photo photos picture image images".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(text: str) -> list[str]:
    """The content words of a query, lower-case, in order, without repeats."""
    words = _WORD.findall(text.lower())
    return list(dict.fromkeys(w for w in words if w not in _STOPWORDS and (len(w) > 1 or w.isdigit())))


# Full matches come straight from FTS5 (one index row per photo, rowid = photo
# id), which intersects its posting lists in C. Partial matches are only needed
# for the photos a search already ranks, so they are computed here from those
# few captions, with the same Porter stemming and accent folding.
FULL_MATCH_LIMIT = 200_000


@dataclass
class KeywordMatches:
    full: np.ndarray  # photo ids, ascending, whose captions hold every word
    partial: dict[int, float]  # for the photos asked about: the share of the words held (< 1)

    def share(self, photo_ids: np.ndarray) -> np.ndarray:
        out = np.isin(photo_ids, self.full).astype(np.float64)
        for i, pid in enumerate(photo_ids.tolist()):
            out[i] = max(out[i], self.partial.get(pid, 0.0))
        return out

    def as_dict(self) -> dict[int, float]:
        return {**self.partial, **dict.fromkeys(self.full.tolist(), 1.0)}


def keyword_matches(library: Library, words: list[str], among=()) -> KeywordMatches:
    """Photos whose captions hold all ``words``; the partial share for the photos in ``among``."""
    full = full_matches(library, words)
    return KeywordMatches(full, partial_matches(library, words, [i for i in among if i not in set(full.tolist())]))


def full_matches(library: Library, words: list[str], phrases=()) -> np.ndarray:
    """Ids (ascending) of photos whose captions hold every word (stemmed: 'dogs' finds 'dog') and every phrase."""
    if not words and not phrases:
        return np.zeros(0, np.int64)
    # Quoted: never FTS syntax. A quoted string of several words is an FTS5 phrase (consecutive tokens).
    query = " ".join('"' + w.replace('"', '""') + '"' for w in [*words, *phrases])
    with library.session() as s:
        # The driver's own cursor: ORM rows would cost more than the search itself.
        cursor = s.connection().connection.cursor()
        try:
            rows = cursor.execute("SELECT rowid FROM captions_fts WHERE captions_fts MATCH ? ORDER BY rowid LIMIT ?",
                                  (query, FULL_MATCH_LIMIT)).fetchall()
        finally:
            cursor.close()
    return np.fromiter(chain.from_iterable(rows), np.int64, len(rows))


def partial_matches(library: Library, words: list[str], photo_ids) -> dict[int, float]:
    """For these photos (not full matches): the share of ``words`` their captions hold, below 1."""
    photo_ids = [int(i) for i in photo_ids]
    if len(words) < 2 or not photo_ids:
        return {}
    with library.session() as s:
        captions = s.execute(select(Caption.photo_id, Caption.text).where(Caption.photo_id.in_(photo_ids))).all()
    if _porter() is None:
        return {}  # no stemmer (the packaged app): full matches only
    wanted = {_stem(w) for w in words}
    top = (len(wanted) - 1) / len(wanted)  # a stemming disagreement must not fake a full match
    stems: dict[int, set[str]] = {}
    for pid, caption in captions:
        stems.setdefault(pid, set()).update(_stems(caption))
    return {pid: min(top, len(wanted & got) / len(wanted)) for pid, got in stems.items() if wanted & got}


def stem_word(word: str) -> str:
    """A word as the caption index compares it: accents folded, lower-case, Porter-stemmed where nltk is."""
    return _stem(word) if _porter() is not None else _fold(word)


def _stems(caption: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(caption.lower())}


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """What FTS5's ``porter unicode61 remove_diacritics 2`` keeps of a word."""
    return _porter().stem(_fold(word))


def _fold(word: str) -> str:
    """Accents dropped (NFKD, combining marks removed), lower-case: ``remove_diacritics 2``'s folding."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)).lower()


@lru_cache(maxsize=1)
def _porter():
    try:
        from nltk.stem.porter import PorterStemmer
    except ImportError:
        return None
    return PorterStemmer(mode=PorterStemmer.ORIGINAL_ALGORITHM)
