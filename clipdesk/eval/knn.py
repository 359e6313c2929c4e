"""Accepted labels as ground truth: does a photo's neighbourhood in the embedding share its labels?

Leave-one-out k-NN over the photos that have at least one accepted label
and a vector for the current model: each photo's ``k`` nearest other such
photos vote, one vote per label per neighbour; the label with most votes
is the prediction (ties: the larger summed similarity of its voters, then
the name). A photo counts as correct when the prediction is one of *its*
accepted labels, so a photo labelled "dog" and "beach" is right with
either. The majority baseline predicts the most common label for every
photo: a space with no structure scores about that.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sqlalchemy import select

from clipdesk.store.db import Library
from clipdesk.store.models import Label
from clipdesk.store.vectors import load_vectors

DEFAULT_K = 10
MIN_PHOTOS = 10


def knn_accuracy(vectors: np.ndarray, labels: list[set[str]], k: int = DEFAULT_K) -> tuple[float, float]:
    """(accuracy, majority baseline) of leave-one-out k-NN label prediction; see the module docstring."""
    n = len(labels)
    k = max(1, min(k, n - 1))
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    # Stable on -similarity: equal neighbours are taken in row order, the same answer every run.
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    correct = 0
    for i in range(n):
        votes: Counter[str] = Counter()
        weight: dict[str, float] = {}
        for j in nearest[i]:
            for label in labels[j]:
                votes[label] += 1
                weight[label] = weight.get(label, 0.0) + float(sims[i, j])
        predicted = min(votes, key=lambda lab: (-votes[lab], -weight[lab], lab))
        correct += predicted in labels[i]
    counts = Counter(label for ls in labels for label in ls)
    most = min(counts, key=lambda lab: (-counts[lab], lab))
    baseline = sum(most in ls for ls in labels) / n
    return correct / n, baseline


def labels_knn_section(library: Library, model_key: str, k: int = DEFAULT_K) -> dict:
    """The ``labels_knn`` section from the library's accepted labels, or ``{"skipped": reason}``."""
    with library.session() as s:
        rows = s.execute(select(Label.photo_id, Label.label).where(Label.status == "accepted")).all()
    by_photo: dict[int, set[str]] = {}
    for photo_id, label in rows:
        by_photo.setdefault(photo_id, set()).add(label)
    stored = load_vectors(library, model_key)
    have = [(row, by_photo[int(pid)]) for row, pid in enumerate(stored.ids) if int(pid) in by_photo]
    need = max(MIN_PHOTOS, k + 1)
    distinct = {label for _, ls in have for label in ls}
    if len(have) < need or len(distinct) < 2:
        return {"skipped": f"{len(have)} photo(s) with accepted labels and a vector for this model, "
                f"{len(distinct)} distinct label(s): need at least {need} photos and 2 labels "
                f"(accept labels with: clipdesk label accept ID LABEL)",
                "photos_with_accepted_labels": len(by_photo)}
    vectors = stored.matrix[[row for row, _ in have]]
    accuracy, baseline = knn_accuracy(vectors, [ls for _, ls in have], k)
    return {"n": len(have), "labels": len(distinct), "k": min(k, len(have) - 1), "accuracy": round(accuracy, 4),
            "majority_baseline": round(baseline, 4),
            "rule": "leave-one-out; the most-voted label among the k nearest is one of the photo's accepted labels"}
