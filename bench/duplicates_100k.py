"""Duplicate grouping at 10k and 100k photos: time, peak memory, recall of planted groups.

Synthetic photos (no files, no model): random 64-bit pHashes with random
rotation/mirror variants, capture times spread over five years, and unit
vectors (``--dim``, 512 as ViT-B/32) shaped like a photo library's: 2,000
scene centres plus variation in a 32-dimensional subspace (CLIP image
embeddings have a low intrinsic dimension; ``--isotropic`` draws plain random
vectors instead, the nearest-neighbour graph's worst case), so that unrelated
photos of a scene sit at cosine ~0.6, below every threshold. Planted among them, 1 % of the photos
each: exact copies (same content hash), edited copies (hash 1-6 bits away,
some rotated, cosine ~0.95, no time), crops (hash unrelated, cosine ~0.95)
and bursts (three shots 1-3 s apart, cosine ~0.85). Grouping is the app's
``find_groups`` with the default thresholds (no calibration: random vectors
have no neighbour structure to calibrate on).

Usage: python bench/duplicates_100k.py [--sizes 10000,100000] [--dim 512]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from datetime import date

import numpy as np

from clipdesk.duplicates.data import DupData
from clipdesk.duplicates.grouping import Thresholds, find_groups
from clipdesk.store.graph import Graph


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synth(n: int, dim: int, seed: int = 0, isotropic: bool = False):
    rng = np.random.default_rng(seed)
    phash = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    variants = np.stack([phash] + [rng.integers(0, 2**63, n, dtype=np.uint64) for _ in range(7)], axis=1)
    if isotropic:
        vectors = _unit(rng.standard_normal((n, dim)).astype(np.float32))
    else:
        centres = _unit(rng.standard_normal((2000, dim)).astype(np.float32))
        basis = np.linalg.qr(rng.standard_normal((dim, 32)))[0].T.astype(np.float32)
        spread = rng.standard_normal((n, 32)).astype(np.float32) * (0.8 / np.sqrt(32))
        vectors = _unit(centres[rng.integers(0, 2000, n)] + spread @ basis)
    taken = rng.uniform(1.5e9, 1.5e9 + 5 * 365 * 86400, n)
    content = [f"c{i}" for i in range(n)]
    truth = np.full(n, -1)  # planted group of each row
    per = max(1, n // 100)
    row = 0
    gid = 0

    def close(base, cos):
        v = _unit(rng.standard_normal(dim).astype(np.float32))
        v = _unit(v - (v @ base) * base)
        return _unit(cos * base + np.sqrt(1 - cos**2) * v)

    for kind in ("exact", "edit", "crop", "burst"):
        for _ in range(per // (3 if kind == "burst" else 2)):
            a, b = row, row + 1
            truth[a] = truth[b] = gid
            if kind == "exact":
                content[b] = content[a]
            elif kind in ("edit", "crop"):
                taken[b] = np.nan  # a copy lost its EXIF
                vectors[b] = close(vectors[a], float(rng.uniform(0.93, 0.98)))
                if kind == "edit":
                    flips = np.uint64(sum(1 << int(k) for k in rng.choice(64, int(rng.integers(1, 7)), False)))
                    t = int(rng.integers(8))  # b is a's variant t, a few bits off
                    phash[b] = variants[a, t] ^ flips
            else:
                c = row + 2
                truth[c] = gid
                for k, dt in ((b, 1.0), (c, 3.0)):
                    taken[k] = taken[a] + dt
                    vectors[k] = close(vectors[a], float(rng.uniform(0.83, 0.9)))
                row += 1
            row += 2
            gid += 1
    data = DupData(np.arange(n, dtype=np.int64), content, [None] * n, phash, variants, np.ones(n, bool), taken,
                   [None] * n, vectors, np.ones(n, bool))
    return data, truth


def score(groups, truth) -> dict:
    found = {}
    for g_no, g in enumerate(groups):
        for m in g.members:
            found[m.photo_id] = g_no
    planted = {}
    for r, g in enumerate(truth):
        if g >= 0:
            planted.setdefault(int(g), []).append(r)
    whole = sum(len({found.get(r, -1 - r) for r in rows}) == 1 and found.get(rows[0]) is not None
                and len(groups[found[rows[0]]].members) == len(rows) for rows in planted.values())
    extra = sum(1 for r in found if truth[r] < 0)
    return {"planted": len(planted), "recovered_whole": whole, "recall": round(whole / max(1, len(planted)), 4),
            "found_groups": len(groups), "photos_wrongly_grouped": extra}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--isotropic", action="store_true", help="plain random vectors (the graph's worst case)")
    args = p.parse_args()
    print(f"# {date.today()} {platform.machine()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"dim {args.dim}, {'isotropic' if args.isotropic else 'library-shaped'} vectors")
    for n in (int(s) for s in args.sizes.split(",")):
        data, truth = synth(n, args.dim, isotropic=args.isotropic)
        # The graph: built once and saved by the app (store/vectors.py), reused while the vectors are unchanged.
        t0 = time.perf_counter()
        index = Graph.build(data.ids, lambda a, b: data.vectors[a:b], args.dim)
        build = time.perf_counter() - t0
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        groups = find_groups(data, Thresholds(calibrated=True), index=index)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print({"photos": n, "graph_build_s": round(build, 1), "grouping_s": round(seconds, 2),
               "peak_rss_mb_before_grouping": round(before), "peak_rss_mb": round(peak), **score(groups, truth)},
              flush=True)


if __name__ == "__main__":
    main()
