"""Per-tier precision and recall of the duplicate finder, on hashes and capture times alone.

* near: the retrieval harness's near-duplicate benchmark (``clipdesk.eval.near_dup``: seeded transformed
  views of coco_mini photos; views carry no capture time), recall per transform;
* exact and similar: a generated tree (``clipdesk.duplicates.synth``) over the same photos: byte copies,
  same pixels under other metadata, bursts seconds apart, lone photos.

Pairwise: a predicted pair is two photos the finder put in one group of that tier. No embeddings: the only
model here is the test-only random one, so the figures are what hashes and times achieve alone; embedding
confirmation (crops, borders, screenshots: the views that move the hash) needs real CLIP weights.

Usage: python bench/duplicates_quality.py [--queries 50] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np

from clipdesk.duplicates.data import DupData
from clipdesk.duplicates.grouping import Thresholds, find_groups
from clipdesk.duplicates.hashes import hash_image
from clipdesk.eval.near_dup import build_near_duplicate_set


def _data(hashes, taken=None, content=None) -> DupData:
    n = len(hashes)
    return DupData(np.arange(n, dtype=np.int64), content or [None] * n, [h.pixel_hash for h in hashes],
                   np.array([h.phash for h in hashes], np.uint64),
                   np.array([h.variants for h in hashes], np.uint64), np.ones(n, bool),
                   np.full(n, np.nan) if taken is None else np.asarray(taken, float), [None] * n)


def _pairs(groups, tier=None) -> set[tuple[int, int]]:
    out = set()
    for g in groups:
        if tier is None or g.tier == tier:
            out |= set(combinations(sorted(m.photo_id for m in g.members), 2))
    return out


def near_benchmark(photos: list[Path], queries: int) -> dict:
    bench = build_near_duplicate_set(photos, queries, seed=0)
    hashes = [hash_image(it.image()) for it in bench.items]
    groups = find_groups(_data(hashes), Thresholds(), use_cosine=False)
    pred = _pairs(groups)
    by_group: dict[int, list[int]] = {}
    for i, it in enumerate(bench.items):
        by_group.setdefault(it.group, []).append(i)
    true = set()
    for rows in by_group.values():
        true |= set(combinations(sorted(rows), 2))
    orig = {it.group: i for i, it in enumerate(bench.items) if it.is_original}
    per = {}
    for kind in bench.transforms:
        hits = [tuple(sorted((orig[it.group], i))) in pred for i, it in enumerate(bench.items) if it.transform == kind]
        per[kind] = round(float(np.mean(hits)), 3)
    tp = len(pred & true)
    return {"items": len(bench.items), "precision": round(tp / max(1, len(pred)), 3),
            "recall": round(tp / max(1, len(true)), 3), "recall_by_transform": per, "digest": bench.digest}


def tree_benchmark(photos: list[Path]) -> dict:
    from clipdesk.duplicates.hashes import hash_file
    from clipdesk.duplicates.synth import make_tree
    from clipdesk.imageio import read_photo

    with tempfile.TemporaryDirectory() as tmp:
        tree = make_tree(photos, Path(tmp) / "tree", negatives=len(photos) // 5)
        paths = sorted(tree.truth)
        infos = [read_photo(p) for p in paths]
        data = _data([hash_file(p) for p in paths], [i.taken_at.timestamp() if i.taken_at else np.nan for i in infos],
                     [i.content_hash for i in infos])
        groups = find_groups(data, Thresholds(), use_cosine=False)
        out = {}
        for tier in ("exact", "near", "similar"):
            pred = _pairs(groups, tier)
            true = set()
            for name, members in tree.groups().items():
                if tree.tiers[name] == tier:
                    true |= set(combinations(sorted(paths.index(p) for p in members), 2))
            tp = len(pred & true)
            out[tier] = {"pairs": len(true), "precision": round(tp / max(1, len(pred)), 3),
                         "recall": round(tp / max(1, len(true)), 3)}
        return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--data", default=os.environ.get("CLIPDESK_SHARED_DATA", "../shared/data"))
    args = p.parse_args()
    photos = sorted((Path(args.data) / "coco_mini" / "images").glob("*.jpg"))
    if not photos:
        sys.exit(f"no coco_mini photos under {args.data}")
    print("near-duplicate benchmark (hashes only):", near_benchmark(photos, args.queries), flush=True)
    print("generated tree (hashes + capture times):", tree_benchmark(photos[:120]), flush=True)


if __name__ == "__main__":
    main()
