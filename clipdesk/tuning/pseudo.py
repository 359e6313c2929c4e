"""What the library itself teaches: held-out and training photos, near-duplicate clusters, pseudo-captions.

Pseudo-captions are the texts a photo already has: its captions (the
user's and the automatic one) and, for each label it carries (accepted, or
proposed by the labeller), the descriptors that fired for it (kept as the
label's evidence) or, without evidence, the label's name. They are read
from the store's tables directly: tuning sits beside labels and captions,
not above them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from clipdesk.store.db import Library
from clipdesk.store.models import Caption, Label

DUP_POOL = 20_000  # near-duplicates are looked for among this many photos at most (an n^2 product)
TEXTS_PER_PHOTO = 6


@dataclass(frozen=True)
class Split:
    """Rows of the library's ``VectorSet``: ``heldout`` only ever judges, ``train`` sees views, ``pool`` is the rest."""

    heldout: np.ndarray
    train: np.ndarray  # in random order
    pool: np.ndarray  # every row not held out (``train`` included)


def split_rows(n: int, heldout: int, train: int, seed: int) -> Split:
    order = np.random.default_rng(seed).permutation(n)
    held = np.sort(order[:heldout])
    pool = np.sort(order[heldout:])
    # ``train`` stays in random order: a time budget that stops viewing early still leaves a random sample.
    return Split(held, order[heldout : heldout + train], pool)


def near_duplicate_clusters(vectors: np.ndarray, rows: np.ndarray, threshold: float, seed: int = 0,
                            limit: int = DUP_POOL) -> list[np.ndarray]:
    """Groups of ``rows`` whose vectors are mutual nearest neighbours at cosine >= ``threshold``.

    Mutual pairs are joined transitively (union-find), so a burst of five
    shots becomes one class. At most ``limit`` rows are searched (a random
    sample above that): the product is quadratic.
    """
    rows = np.asarray(rows)
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
    if len(rows) < 2:
        return []
    x = vectors[rows]
    nearest = np.empty(len(rows), np.int64)
    best = np.empty(len(rows), np.float32)
    for start in range(0, len(rows), 2048):
        sims = x[start : start + 2048] @ x.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # not itself
        nearest[start : start + 2048] = sims.argmax(1)
        best[start : start + 2048] = sims.max(1)
    parent = np.arange(len(rows))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in np.flatnonzero((best >= threshold) & (nearest[nearest] == np.arange(len(rows)))):
        parent[root(i)] = root(int(nearest[i]))
    groups: dict[int, list[int]] = {}
    for i in range(len(rows)):
        groups.setdefault(root(i), []).append(i)
    return [rows[np.asarray(g)] for g in groups.values() if len(g) > 1]


def pseudo_captions(library: Library, photo_ids: Sequence[int]) -> dict[int, list[str]]:
    """Photo id -> its pseudo-captions (captions first, then label descriptors), at most ``TEXTS_PER_PHOTO``."""
    wanted = [int(i) for i in photo_ids]
    texts: dict[int, list[str]] = {}
    with library.session() as s:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = s.execute(select(Caption.photo_id, Caption.text).where(Caption.photo_id.in_(chunk))
                             .order_by(Caption.photo_id, (Caption.source == "user").desc())).all()
            for pid, text in rows:
                texts.setdefault(pid, []).append(" ".join(text.split()))
            rows = s.execute(select(Label.photo_id, Label.label, Label.status, Label.evidence)
                             .where(Label.photo_id.in_(chunk), Label.status != "rejected")
                             .order_by(Label.photo_id, Label.score.desc().nulls_last())).all()
            for pid, label, status, evidence in rows:
                fired = _descriptors(evidence)
                if fired:
                    texts.setdefault(pid, []).extend(fired)
                elif status == "accepted":
                    texts.setdefault(pid, []).append(f"a photo of {label}")
    return {pid: list(dict.fromkeys(t for t in found if t))[:TEXTS_PER_PHOTO] for pid, found in texts.items()}


def _descriptors(evidence: str | None) -> list[str]:
    try:
        return [str(d) for d, _score in json.loads(evidence)] if evidence else []
    except (ValueError, TypeError):
        return []  # a damaged evidence row only loses its texts


@dataclass(frozen=True)
class TextPairs:
    """Unique ``texts`` and (text index, photo row) pairs: what stage 2 and the guard's text check use."""

    texts: list[str]
    pairs: np.ndarray  # int64, n x 2

    def __len__(self) -> int:
        return len(self.pairs)


def text_pairs(captions: dict[int, list[str]], row_of: dict[int, int], rows: np.ndarray, limit: int,
               seed: int) -> TextPairs:
    """Pairs for the photos at ``rows`` (at most ``limit``, a seeded sample)."""
    keep = set(int(r) for r in rows)
    found = [(text, row_of[pid]) for pid, texts in captions.items() if row_of.get(pid) in keep for text in texts]
    if len(found) > limit:
        picked = np.random.default_rng(seed).choice(len(found), limit, replace=False)
        found = [found[i] for i in np.sort(picked)]
    index: dict[str, int] = {}
    pairs = [(index.setdefault(text, len(index)), row) for text, row in found]
    return TextPairs(list(index), np.asarray(pairs, np.int64).reshape(-1, 2))
