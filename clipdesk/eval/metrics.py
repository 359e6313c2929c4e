"""Ranking metrics over a score matrix, as the retrieval literature defines them.

``scores`` is queries × candidates (higher is closer); ``relevant`` is a
boolean matrix of the same shape. A query's own item, when it is among the
candidates, is left out with ``exclude``. Average precision follows the
GPR1200 paper's definition (mean of precision at each relevant hit, over
*all* relevant items); mAP@k cuts the ranking at k and divides by
min(k, number relevant), the usual image-retrieval convention.
"""

from __future__ import annotations

import numpy as np


def _ranked(scores: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, np.float64)
    relevant = np.asarray(relevant, bool)
    if scores.shape != relevant.shape:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} differ")
    if exclude is not None:
        exclude = np.asarray(exclude, bool)
        scores = np.where(exclude, -np.inf, scores)
        relevant = relevant & ~exclude
    # Stable and tie-breaking by candidate index: the same input ranks the same way every time.
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(relevant, order, axis=1), relevant.sum(axis=1)


def average_precisions(scores: np.ndarray, relevant: np.ndarray, k: int | None = None,
                       exclude: np.ndarray | None = None) -> np.ndarray:
    """Per-query AP (at ``k`` if given); queries with no relevant candidate get NaN."""
    hits, n_relevant = _ranked(scores, relevant, exclude)
    if k is not None:
        hits = hits[:, :k]
    ranks = np.arange(1, hits.shape[1] + 1)
    precision_at_hit = np.cumsum(hits, axis=1) / ranks * hits
    denominator = n_relevant if k is None else np.minimum(n_relevant, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, precision_at_hit.sum(axis=1) / denominator, np.nan)


def mean_average_precision(scores, relevant, k: int | None = 100, exclude=None) -> float:
    """mAP (over queries that have at least one relevant candidate); ``k=None``: the full ranking."""
    aps = average_precisions(scores, relevant, k, exclude)
    return float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")


def recall_at_k(scores, relevant, ks=(1, 5, 10), exclude=None) -> dict[int, float]:
    """Share of queries with at least one relevant candidate in the first k (R@k of text-to-image retrieval)."""
    hits, n_relevant = _ranked(scores, relevant, exclude)
    has = n_relevant > 0
    return {k: float(hits[has, :k].any(axis=1).mean()) if has.any() else float("nan") for k in ks}
