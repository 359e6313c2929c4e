"""User feedback on labels: accept/reject, and a per-label probe learned from it.

A rejected label row is kept with ``status="rejected"`` forever, so automatic
labeling (which skips existing rows) never proposes it again. An accepted auto
label keeps its ``source`` and becomes ``status="accepted"``; accepting a
label the photo did not have adds a ``source="user"`` row.

``LabelProbe`` turns a handful of accepted (positive) and rejected (negative)
photos into a linear scorer on the image embeddings. It is logistic regression
whose L2 penalty pulls the weights toward the label's descriptor prior
``s * w0`` (``w0``: the mean descriptor text vector) instead of toward zero, so
with few examples it stays close to the zero-shot scorer and with more it
corrects it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from clipdesk.crashpoints import crash_point
from clipdesk.store.db import Library
from clipdesk.store.models import Label


def set_feedback(library: Library, photo_id: int, label: str, accepted: bool) -> Label:
    """Record the user's yes/no for ``label`` on a photo; returns the (detached) row."""
    label = label.strip().lower()

    def write(s) -> Label:
        row = s.scalar(select(Label).where(Label.photo_id == photo_id, Label.label == label))
        if row is None:
            row = Label(photo_id=photo_id, label=label, source="user", score=None)
            s.add(row)
        row.status = "accepted" if accepted else "rejected"
        s.flush()
        crash_point("feedback.written")
        s.expunge(row)
        return row

    row = library.write(write)
    crash_point("feedback.committed")
    return row


def feedback_examples(library: Library, label: str) -> tuple[list[int], list[int]]:
    """Photo ids the user accepted and rejected for ``label``."""
    with library.session() as s:
        rows = s.execute(select(Label.photo_id, Label.status).where(Label.label == label.strip().lower())).all()
    return [p for p, st in rows if st == "accepted"], [p for p, st in rows if st == "rejected"]


@dataclass
class LabelProbe:
    """Linear probe ``sigmoid(x @ w + b)`` regularised toward ``scale * prior``."""

    prior: np.ndarray  # unit descriptor text vector
    scale: float = 20.0  # CLIP-like logit scale: cosine 0.05 apart -> 1 logit
    lam: float = 0.0003  # per-example loss vs pull to the prior; tuned with bench/label_feedback.py
    steps: int = 2000
    lr: float = 0.5
    w: np.ndarray | None = None
    b: float = 0.0
    positives: int = 0
    negatives: int = 0

    def __post_init__(self) -> None:
        self.prior = np.asarray(self.prior, np.float64)
        self.prior /= np.linalg.norm(self.prior)

    def fit(self, positives: np.ndarray, negatives: np.ndarray) -> LabelProbe:
        x = np.concatenate([positives, negatives]).astype(np.float64)
        y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
        target = self.scale * self.prior
        w = target.copy()
        # Start the bias midway between the classes under the prior.
        b = -float(np.median(x @ w)) if len(x) else 0.0
        for _ in range(self.steps):
            p = 1 / (1 + np.exp(-(x @ w + b)))
            grad = p - y
            gw = x.T @ grad / len(y) + 2 * self.lam * (w - target)
            gb = float(grad.mean())
            w -= self.lr * gw
            b -= self.lr * gb
        self.w, self.b = w, b
        self.positives, self.negatives = len(positives), len(negatives)
        return self

    def logit(self, vectors: np.ndarray) -> np.ndarray:
        """``x @ w + b`` of a fitted probe: positive means the label applies."""
        return np.asarray(vectors, np.float64) @ self.w + self.b

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """Probability-like scores; before ``fit``, the prior's cosine similarity."""
        if self.w is None:
            return np.asarray(vectors, np.float64) @ self.prior
        return 1 / (1 + np.exp(-self.logit(vectors)))
