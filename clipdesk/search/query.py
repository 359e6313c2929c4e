"""The query syntax, and the filters a search can carry.

Words form one phrase; ``-word`` or ``-"two words"`` is a negative;
``+"phrase"`` adds a separate positive; ``term:0.5`` (or ``"a phrase":2``)
sets a weight. A quoted part of the plain words (``receipt "total 58.20"``)
joins the phrase CLIP sees and is also matched as an exact phrase in the
words read in photos (OCR) and in captions.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select

from clipdesk.errors import QueryError
from clipdesk.store.db import Library
from clipdesk.store.models import Photo

_WEIGHT = re.compile(r"^(?P<body>.*?):(?P<w>[0-9]*\.?[0-9]+)$")
# A token is a run of quoted or unquoted chunks (as a shell splits words); a
# lone quote is an error, as it was with shlex.
_TOKEN = re.compile(r"""(?:"[^"]*"|'[^']*'|[^\s"'])+""")
_CHUNK = re.compile(r""""([^"]*)"|'([^']*)'|([^"']+)""")


@dataclass
class Term:
    kind: str  # text | file | photo
    value: str | int
    weight: float = 1.0
    negative: bool = False
    phrases: tuple[str, ...] = ()  # the quoted parts of a text term: matched as phrases in photo text


@dataclass
class Filters:
    folder: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    types: tuple[str, ...] = ()  # Pillow format names or extensions, case-insensitive
    photo_ids: frozenset[int] | None = None  # e.g. the photos carrying a label

    def active(self) -> bool:
        return bool(self.folder or self.date_from or self.date_to or self.types or self.photo_ids is not None)


def _check_quotes(text: str) -> None:
    if _TOKEN.sub("", text).strip():  # what no token could take: a quote without its partner
        raise QueryError("Cannot read the query (No closing quotation); check the quotes.")


def _split_token(raw: str) -> tuple[str, str, float, bool]:
    """(sign, body, weight, quoted) of one raw token such as ``-"red car":0.5``."""
    sign = raw[0] if raw[0] in "+-" and len(raw) > 1 else ""
    rest = raw[1:] if sign else raw
    weight = 1.0
    m = _WEIGHT.match(rest)
    if m and m.group("body"):
        rest, weight = m.group("body"), float(m.group("w"))
    chunks = _CHUNK.findall(rest)
    quoted = len(chunks) == 1 and not chunks[0][2]
    return sign, "".join(a or b or c for a, b, c in chunks), weight, quoted


def parse_text_query(text: str, require_positive: bool = True) -> list[Term]:
    """Parse the query syntax above into terms.

    ``require_positive=False``: only negatives are fine, because the query
    has a positive elsewhere (an image: ``similar 42 --text -people``)."""
    _check_quotes(text)
    phrase: list[str] = []
    quoted_parts: list[str] = []
    terms: list[Term] = []
    for m in _TOKEN.finditer(text):
        sign, body, weight, quoted = _split_token(m.group(0))
        if not body.strip():
            continue
        if sign or weight != 1.0:
            terms.append(Term("text", body, weight, negative=sign == "-",
                              phrases=(body,) if quoted and sign != "-" else ()))
        else:
            phrase.append(body)
            if quoted:
                quoted_parts.append(body)
    if phrase:
        terms.insert(0, Term("text", " ".join(phrase), phrases=tuple(quoted_parts)))
    if require_positive and terms and not any(not t.negative for t in terms):
        raise QueryError("The query has only negatives; say what to look for too (e.g. 'beach -people').")
    return terms


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
