"""Keyword signals for a text query: words read in photos, captions, labels, file and folder names.

Each signal maps photo id -> the share of the query's words (and quoted
phrases) it holds, in (0, 1]; 1 is a full hit, which makes a photo relevant
whatever CLIP says. ``explain`` then says, for the few photos shown, what
matched: the text that ``why`` reports.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import numpy as np
from sqlalchemy import or_, select

from clipdesk.captions.store import best_captions, full_matches, partial_matches, query_words, stem_word
from clipdesk.ocr.store import search_text
from clipdesk.store.db import Library
from clipdesk.store.models import Folder, Label, Photo

# The most photos one word-read (OCR) query returns: far more than a page of results, few enough to rank at once.
OCR_LIMIT = 5000
_NAME_TOKEN = re.compile(r"[^\W_\d]+|\d+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


class KeywordSignals:
    """The keyword hits of one query; ``allowed`` (ascending photo ids, or None for all) applies the filters."""

    def __init__(self, library: Library, text: str, phrases: Iterable[str] = (), allowed: np.ndarray | None = None):
        self.library = library
        self.words = query_words(text)
        self.phrases = [p for p in dict.fromkeys(" ".join(p.split()) for p in phrases) if len(p.split()) > 1]
        self.allowed = allowed
        self.shares: dict[str, dict[int, float]] = {}
        self._text: dict[str, dict[int, str]] = {}

    def gather(self, among: Iterable[int]) -> dict[str, dict[int, float]]:
        """Every source's hits; captions also give partial shares for the photos in ``among`` (CLIP's top)."""
        if not self.words and not self.phrases:
            return {}
        among = [int(i) for i in among]
        self.shares = {"ocr": self._ocr(), "caption": self._captions(among),
                       "label": self._labels(), "name": self._names()}
        self.shares = {src: self._allowed_only(hits) for src, hits in self.shares.items()}
        return {src: hits for src, hits in self.shares.items() if hits}

    def full_hits(self) -> set[int]:
        return {pid for hits in self.shares.values() for pid, share in hits.items() if share >= 1.0}

    def explain(self, photo_ids: list[int]) -> dict[int, list[dict]]:
        """For each photo: what matched, as ``why`` entries (source, text, share)."""
        out: dict[int, list[dict]] = {pid: [] for pid in photo_ids}
        wanted = [pid for pid in photo_ids if pid in self.shares.get("caption", {})]
        captions = best_captions(self.library, wanted) if wanted else {}
        for source, hits in self.shares.items():
            texts = captions if source == "caption" else self._text.get(source, {})
            for pid in photo_ids:
                if pid in hits:
                    out[pid].append({"source": source, "text": texts.get(pid, ""), "share": round(hits[pid], 3)})
        return out

    # -- the sources ----------------------------------------------------------------

    def _allowed_only(self, hits: dict[int, float]) -> dict[int, float]:
        if self.allowed is None or not hits:
            return hits
        ids = np.fromiter(hits, np.int64, len(hits))
        pos = np.minimum(np.searchsorted(self.allowed, ids), len(self.allowed) - 1)
        ok = self.allowed[pos] == ids if len(self.allowed) else np.zeros(len(ids), bool)
        return {int(pid): hits[int(pid)] for pid in ids[ok]}

    def _ocr(self) -> dict[int, float]:
        hits = search_text(self.library, self.words, self.phrases, limit=OCR_LIMIT)
        self._text["ocr"] = {h.photo_id: h.snippet for h in hits}
        return {h.photo_id: float(h.share) for h in hits}

    def _captions(self, among: list[int]) -> dict[int, float]:
        full = full_matches(self.library, self.words, self.phrases)
        shares = dict.fromkeys(full.tolist(), 1.0)
        # A partial share needs the words; phrases count only in full (an FTS phrase query).
        shares.update(partial_matches(self.library, self.words, [i for i in among if i not in shares]))
        return shares

    def _labels(self) -> dict[int, float]:
        """Labels whose every word is among the query's: 'golden retriever' matches 'golden retriever on grass'."""
        if not self.words:
            return {}
        wanted = {stem_word(w) for w in self.words}
        with self.library.session() as s:
            names = s.scalars(select(Label.label).distinct()).all()
            matching = {}
            for name in names:
                stems = {stem_word(w) for w in query_words(name)}
                if stems and stems <= wanted:
                    matching[name] = stems
            if not matching:
                return {}
            rows = s.execute(select(Label.photo_id, Label.label).join(Photo, Photo.id == Label.photo_id).where(
                Label.label.in_(list(matching)), Label.status != "rejected", Photo.missing_since.is_(None))).all()
        covered: dict[int, set[str]] = {}
        labels: dict[int, list[str]] = {}
        for pid, name in rows:
            covered.setdefault(pid, set()).update(matching[name])
            labels.setdefault(pid, []).append(name)
        self._text["label"] = {pid: ", ".join(sorted(names)) for pid, names in labels.items()}
        return {pid: len(stems) / len(wanted) for pid, stems in covered.items()}

    def _names(self) -> dict[int, float]:
        """File and folder names below the library folder (its own name included), split into words."""
        if not self.words:
            return {}
        like = [Photo.path.like(f"%{_escape_like(w)}%", escape="\\") for w in self.words]
        with self.library.session() as s:
            rows = s.execute(select(Photo.id, Photo.path, Folder.path).outerjoin(Folder, Folder.id == Photo.folder_id)
                             .where(Photo.missing_since.is_(None), or_(*like))).all()
        wanted = {stem_word(w) for w in self.words}  # digits stem to themselves: "0042" stays "0042"
        shares, texts = {}, {}
        for pid, path, root in rows:
            rel = _relative_name(path, root)
            got = {stem_word(t) for t in name_words(rel)} & wanted
            if got:
                shares[pid] = len(got) / len(wanted)
                texts[pid] = rel
        self._text["name"] = texts
        return shares


def name_words(rel_path: str) -> list[str]:
    """The words of a path: folders and the file name without its extension; 'BeachDay_2019' -> beach, day, 2019."""
    head, tail = os.path.split(rel_path)
    text = os.path.join(head, os.path.splitext(tail)[0])
    return _NAME_TOKEN.findall(_CAMEL.sub(" ", text).lower())


def _relative_name(path: str, root: str | None) -> str:
    """The path from the library folder's own name down (the folders above it say nothing about the photo)."""
    if root and path.startswith(os.path.join(root, "")):
        return os.path.relpath(path, os.path.dirname(root.rstrip(os.sep)) or os.sep)
    return os.path.basename(path)


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
