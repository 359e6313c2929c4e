"""The sections of ``eval retrieval`` as functions of vectors: no model, no files, known answers testable.

Every vector is a unit row (the engines L2-normalise), so a dot product is
the cosine similarity the library searches with. Each function returns the
section's JSON object: ``n`` (its queries) and its metrics, rounded to 4
places.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clipdesk.eval.metrics import average_precisions, recall_at_k
from clipdesk.eval.near_dup import NearDupSet

KS = (1, 5, 10)
# Query rows scored at once: a 12,000-photo folder set would otherwise need 12,000^2 scores (1.1 GB) at once.
CHUNK = 1024


def _r(x: float) -> float | None:
    return None if x != x else round(float(x), 4)  # NaN (nothing to measure) is null in JSON


def rank_metrics(queries: np.ndarray, candidates: np.ndarray,
                 relevance: Callable[[slice], tuple[np.ndarray, np.ndarray | None]],
                 k: int | None = 100, ks: tuple[int, ...] = (1,)) -> dict:
    """mAP (at ``k``; None: the full ranking) and R@``ks`` of ``queries`` against ``candidates``, in chunks.

    Args:
        queries: query vectors, one row each.
        candidates: candidate vectors.
        relevance: for a slice of query rows, (relevant, exclude) over all candidates; exclude may be None.
        k: the ranking cut for mAP.
        ks: the cuts for recall.

    Returns:
        ``{"mAP@k": ..., "R@1": ..., "queries": number of queries with a relevant candidate}``;
        ``mAP`` is named ``mAP`` for the full ranking.
    """
    aps, hits, counted = [], {c: 0.0 for c in ks}, 0
    for start in range(0, len(queries), CHUNK):
        rows = slice(start, min(start + CHUNK, len(queries)))
        relevant, exclude = relevance(rows)
        scores = queries[rows] @ candidates.T
        aps.append(average_precisions(scores, relevant, k, exclude))
        usable = int((relevant & ~exclude if exclude is not None else relevant).any(axis=1).sum())
        if usable:
            for c, value in recall_at_k(scores, relevant, ks, exclude).items():
                hits[c] += value * usable
        counted += usable
    ap = np.concatenate(aps) if aps else np.zeros(0)
    name = "mAP" if k is None else f"mAP@{k}"
    out = {name: _r(np.nanmean(ap)) if np.isfinite(ap).any() else None}
    out.update({f"R@{c}": _r(hits[c] / counted) if counted else None for c in ks})
    out["queries"] = counted
    return out


def text_to_image(image_vectors: np.ndarray, caption_vectors: np.ndarray, owner: np.ndarray) -> dict:
    """Every caption a query, its own photo the one relevant item; and the reverse (each photo finding any of
    its captions), which costs only the transposed score matrix."""
    scores = caption_vectors @ image_vectors.T
    relevant = owner[:, None] == np.arange(len(image_vectors))[None, :]
    t2i = recall_at_k(scores, relevant, KS)
    i2t = recall_at_k(scores.T, relevant.T, KS)
    return {"n": len(caption_vectors), "images": len(image_vectors), **{f"R@{k}": _r(v) for k, v in t2i.items()},
            "image_to_text": {"n": len(image_vectors), **{f"R@{k}": _r(v) for k, v in i2t.items()}}}


def near_duplicates(vectors: np.ndarray, bench: NearDupSet, ok: np.ndarray | None = None) -> dict:
    """mAP@100 and R@1 of each query original finding its views among all items; then per transform, that
    one view as the only relevant item (the query's other views left out, so they are not counted as
    misses): its R@1 and mAP@100, which for a single relevant item is the reciprocal rank within 100.

    ``ok``: items whose vectors exist (an unreadable photo is left out of candidates and queries).
    """
    ok = np.ones(len(bench.items), bool) if ok is None else np.asarray(ok, bool)
    relevant, exclude = bench.relevance()
    exclude = exclude | ~ok[None, :]
    keep = ok[bench.queries]
    relevant, exclude, queries = relevant[keep], exclude[keep], bench.queries[keep]
    vectors = np.where(ok[:, None], vectors, 0.0)
    overall = rank_metrics(vectors[queries], vectors, lambda s: (relevant[s], exclude[s]), k=100)
    kinds = np.array([it.transform for it in bench.items])
    by_transform = {}
    for name in bench.transforms:
        mine = relevant & (kinds == name)[None, :]
        others = exclude | (relevant & ~mine)
        m = rank_metrics(vectors[queries], vectors, lambda s, mine=mine, others=others: (mine[s], others[s]), k=100)
        by_transform[name] = {"R@1": m["R@1"], "mAP@100": m["mAP@100"]}
    return {"n": overall["queries"], "candidates": int(ok.sum()), "mAP@100": overall["mAP@100"],
            "R@1": overall["R@1"], "by_transform": by_transform}


def zero_shot(image_vectors: np.ndarray, class_vectors: np.ndarray, truth: np.ndarray) -> dict:
    """Top-1 and top-5 accuracy: each photo's class prompt must rank first (within the first five) among all."""
    scores = image_vectors @ class_vectors.T
    relevant = np.asarray(truth)[:, None] == np.arange(len(class_vectors))[None, :]
    top = recall_at_k(scores, relevant, (1, 5))
    return {"n": len(image_vectors), "classes": len(class_vectors), "top1": _r(top[1]), "top5": _r(top[5])}


def folders(vectors: np.ndarray, truth: list[str]) -> dict:
    """GPR1200's mAP: every photo a query against all the others, relevant = same class, the full ranking
    (AP over *all* relevant photos); a class with one photo gives queries without an answer, left out."""
    labels = np.array(truth)
    eye_cols = np.arange(len(labels))

    def relevance(rows: slice):
        relevant = labels[rows][:, None] == labels[None, :]
        exclude = eye_cols[rows][:, None] == eye_cols[None, :]
        return relevant & ~exclude, exclude

    m = rank_metrics(vectors, vectors, relevance, k=None, ks=(1,))
    return {"n": len(labels), "classes": len(set(truth)), "queries": m["queries"], "mAP": m["mAP"], "R@1": m["R@1"]}
