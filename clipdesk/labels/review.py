"""The review queue: the (photo, label) decisions the labeller is least sure of.

Uncertainty sampling: a user's answer teaches a label most where its score
sits near the decision boundary. Each candidate's signed margin (see
``LabelScores.margin``) is divided by the label's spread over the library, so
labels with tight and loose score ranges compare fairly. Both sides come:
proposals just above the line ("is this really a dog?") and near misses just
below it ("did we miss a dog here?"). Pairs the user already decided never
appear again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import select

from clipdesk.labels.run import prepare
from clipdesk.labels.scoring import DEFAULT_MARGIN, DEFAULT_Z, TextEncoder
from clipdesk.labels.vocab import Vocabulary
from clipdesk.store.db import Library
from clipdesk.store.models import Label, Photo

# A library too small to calibrate: margins are compared in units of this cosine.
FALLBACK_SPREAD = 0.01


@dataclass(frozen=True)
class ReviewItem:
    photo_id: int
    path: str
    label: str
    score: float  # mean descriptor similarity
    margin: float  # signed distance to the boundary, in spreads; > 0: the label is proposed
    evidence: list[tuple[str, float]]

    @property
    def proposed(self) -> bool:
        return self.margin > 0


def review_queue(library: Library, engine: TextEncoder, vocabulary: Vocabulary, limit: int = 200,
                 label: str | None = None, margin: float = DEFAULT_MARGIN, z: float = DEFAULT_Z,
                 chunk: int = 2048) -> list[ReviewItem]:
    """Up to ``limit`` undecided (photo, label) pairs, most uncertain first.

    ``label``: only that label (e.g. to teach one label on purpose).
    """
    lab = prepare(library, engine, vocabulary, margin, z)
    names = lab.bank.names
    if not len(lab.vectors) or not names or (label is not None and label not in names):
        return []
    spread = lab.stats.spread if lab.stats is not None else np.full(len(names), FALLBACK_SPREAD)
    column = {n: j for j, n in enumerate(names)}
    with library.session() as s:
        decided = s.execute(select(Label.photo_id, Label.label).where(Label.status != "proposed")).all()
    decided_by_photo: dict[int, list[int]] = {}
    for pid, name in decided:
        if name in column:
            decided_by_photo.setdefault(pid, []).append(column[name])
    ids = lab.vectors.ids
    best: list[tuple[float, int, int, ReviewItem]] = []  # (|margin|, photo id, label column, item)
    for start in range(0, len(ids), chunk):
        rows = np.arange(start, min(start + chunk, len(ids)))
        scores = lab.score(rows)
        margins = scores.margin / spread[None, :]
        distance = np.abs(margins)
        if label is not None:
            keep = np.full(len(names), np.inf)
            keep[column[label]] = 0
            distance = distance + keep[None, :]
        for i, pid in enumerate(ids[rows].tolist()):
            for j in decided_by_photo.get(pid, ()):
                distance[i, j] = np.inf
        flat = distance.ravel()
        take = min(limit, int(np.isfinite(flat).sum()))
        if not take:
            continue
        for f in np.argpartition(flat, take - 1)[:take]:
            i, j = divmod(int(f), len(names))
            hit = scores.hit(i, j)
            best.append((float(flat[f]), int(ids[rows[i]]), j,
                         ReviewItem(int(ids[rows[i]]), "", hit.label, hit.score, float(margins[i, j]), hit.evidence)))
        best.sort(key=lambda b: b[:3])
        del best[limit:]
    with library.session() as s:
        paths = dict(s.execute(select(Photo.id, Photo.path).where(Photo.id.in_([b[1] for b in best]))).all())
    return [replace(it, path=paths.get(it.photo_id, "")) for *_, it in best]
