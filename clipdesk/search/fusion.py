"""One ranking over every signal: weighted reciprocal rank fusion.

Each signal ranks the photos it knows about: CLIP by similarity to the
query; the keyword signals (words read in the photo, captions, labels, file
and folder names) by the share of the query's words they hold, ties broken
by CLIP similarity. A photo's fused score is

    sum over signals s of  weight_s * share_s / (RRF_K + rank_s)

(share is 1 for CLIP). Reciprocal rank fusion (Cormack et al., SIGIR 2009)
needs no calibration between incomparable scores (a cosine, a word count),
which is why it is used here rather than a fixed bonus added to the cosine;
K = 60 is the value from that paper, which keeps one list's first place from
outweighing broad agreement further down. A photo that two signals rank well
beats one that a single signal ranks first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RRF_K = 60.0
# File and folder names count half: a folder name applies to every photo in it, and names are often dates or
# camera counters, so a name hit says less about one photo than a word read in it or its caption.
WEIGHTS = {"clip": 1.0, "ocr": 1.0, "caption": 1.0, "label": 1.0, "name": 0.5}
KEYWORD_SOURCES = ("ocr", "caption", "label", "name")


@dataclass
class Fused:
    ids: np.ndarray  # photo ids, best first
    scores: np.ndarray  # their fused scores
    clip: np.ndarray  # their CLIP scores
    parts: list[dict[str, float]]  # per photo: each signal's contribution


def fuse(ids: np.ndarray, clip_scores: np.ndarray, keyword: dict[str, dict[int, float]],
         weights: dict[str, float] = WEIGHTS) -> Fused:
    """Fuse CLIP's scores over the candidate pool ``ids`` with keyword shares per source.

    Every photo a keyword source names must be in ``ids``. Ties (equal fused
    scores) go to the higher CLIP score, then the lower id, so the order is
    deterministic."""
    ids = np.asarray(ids, np.int64)
    clip_scores = np.asarray(clip_scores, np.float64)
    if len(ids) == 0:
        return Fused(ids, np.zeros(0), clip_scores, [])
    by_clip = np.lexsort((ids, -clip_scores))  # best CLIP first, then lower id
    clip_rank = np.empty(len(ids), np.int64)
    clip_rank[by_clip] = np.arange(1, len(ids) + 1)
    position = {int(pid): i for i, pid in enumerate(ids.tolist())}
    parts: list[dict[str, float]] = [{"clip": weights["clip"] / (RRF_K + r)} for r in clip_rank.tolist()]
    for source, shares in keyword.items():
        hits = [(share, position[pid]) for pid, share in shares.items() if share > 0]
        # More of the query's words first; among equals, the better CLIP match.
        hits.sort(key=lambda h: (-h[0], clip_rank[h[1]]))
        w = weights[source]
        for rank, (share, i) in enumerate(hits, start=1):
            parts[i][source] = w * share / (RRF_K + rank)
    scores = np.fromiter((sum(p.values()) for p in parts), np.float64, len(parts))
    order = np.lexsort((ids, clip_rank, -scores))
    return Fused(ids[order], scores[order], clip_scores[order], [parts[i] for i in order.tolist()])
