"""Caption rows: one automatic and one hand-written caption per photo.

A hand-written caption (``source="user"``) is its own row, so automatic runs
(which only ever write ``source="auto"``) can never overwrite it; the user's
caption is the one shown and exported whenever it exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy import text as sql

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
    with library.session() as s, s.begin():
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
    with library.session() as s, s.begin():
        return s.execute(stmt).rowcount


# -- keyword search over captions (the FTS5 index of migration 0002) ----------------

# Words too common in captions and queries to say anything about a photo.
_STOPWORDS = frozenset(
    "a an the of on in at to and or with for by from is are its it this that some "
    "photo photos picture image images".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(text: str) -> list[str]:
    """The content words of a query, lower-case, in order, without repeats."""
    return list(dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS))


def keyword_matches(library: Library, words: list[str]) -> dict[int, float]:
    """Photo id -> the share of ``words`` its captions contain (stemmed: 'dogs' finds 'dog')."""
    if not words:
        return {}
    hits: dict[int, int] = {}
    with library.session() as s:
        for word in words:
            phrase = '"' + word.replace('"', '""') + '"'
            ids = s.execute(sql("SELECT DISTINCT c.photo_id FROM captions_fts JOIN captions c ON c.id = "
                                 "captions_fts.rowid WHERE captions_fts MATCH :q"), {"q": phrase}).scalars()
            for pid in ids:
                hits[pid] = hits.get(pid, 0) + 1
    return {pid: n / len(words) for pid, n in hits.items()}
