"""Absorbing new photos into the search graph: updated in place vs rebuilt, same library, same run.

A temporary library of N photos (structured 512-d vectors, ``search_latency.py``'s generator) gets its graph
built and saved; then +1,000 photos arrive, 100 go missing and 100 are embedded again with new vectors. Timed:
``VectorIndex.hnsw()`` updating the saved graph in place (``graph.SavedGraph``: add_items / mark_deleted), then
a full rebuild of the same state. Both graphs answer the same queries (half image-like held out, half
text-like) and their recall@10 against exact search is printed side by side.

    .venv/bin/python bench/graph_update.py                   # 100k, about 3 min on 2 cores
    .venv/bin/python bench/graph_update.py --sizes 10000
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import _common  # noqa: F401 - sets up sys.path
import numpy as np
from _common import pct, run_sizes, wait_quiet
from search_latency import DIM, MODEL_KEY, fill_library, make_space, structured_vectors, text_like_queries
from sqlalchemy import insert, update

from clipdesk.store.db import Library
from clipdesk.store.graph import SavedGraph
from clipdesk.store.models import Embedding, Photo, utcnow
from clipdesk.store.vectors import VectorIndex

K = 10


def _recall(index: VectorIndex, exact: VectorIndex, queries) -> tuple[float, float, list[float]]:
    got, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        ids, _ = index.search(q, K)
        times.append((time.perf_counter() - t0) * 1000)
        got.append(len(set(ids.tolist()) & set(exact.search(q, K)[0].tolist())) / K)
    half = len(queries) // 2
    return float(np.mean(got[:half])), float(np.mean(got[half:])), times


def run(n: int, args, tmp: Path) -> None:
    space = make_space(n)
    library = Library(tmp / f"lib-{n}")
    try:
        fill_library(library, structured_vectors(n, 1, *space))
        t0 = time.perf_counter()
        VectorIndex(library, MODEL_KEY, hnsw_min_size=1).hnsw()
        first_build = time.perf_counter() - t0
        # The library changes: +1,000 new photos, 100 gone, 100 embedded again.
        extra = structured_vectors(args.add, 5, *space)
        now = utcnow()
        with library.engine.begin() as conn:
            conn.execute(insert(Photo.__table__), [
                {"id": n + i + 1, "path": f"/bench/new/{i:07d}.jpg", "size": 1, "mtime_ns": i,
                 "content_hash": f"new{i:037x}", "format": "JPEG", "width": 1, "height": 1, "frames": 1,
                 "added_at": now} for i in range(args.add)])
            conn.execute(insert(Embedding.__table__), [
                {"photo_id": n + i + 1, "model_key": MODEL_KEY, "dim": DIM, "vector": extra[i].astype("<f2").tobytes(),
                 "content_hash": f"new{i:037x}", "created_at": now} for i in range(args.add)])
            conn.execute(update(Photo).where(Photo.id.between(1, 100)).values(missing_since=datetime(2024, 1, 1)))
            again = structured_vectors(100, 6, *space)
            for i in range(100):
                conn.execute(update(Embedding).where(Embedding.photo_id == 1000 + i)
                             .values(vector=again[i].astype("<f2").tobytes(), created_at=utcnow()))
        half = args.queries // 2
        queries = np.concatenate([structured_vectors(half, 2, *space), text_like_queries(half, 3, *space)])
        if args.wait_quiet:
            wait_quiet(args.wait_quiet, max_wait=60.0, quiet=True)
        t0 = time.perf_counter()
        updated = VectorIndex(library, MODEL_KEY, hnsw_min_size=1)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        updated.hnsw()
        update_s = time.perf_counter() - t0
        stats = updated.graph.stats
        assert not stats.built, "expected an update in place"
        rebuilt = VectorIndex(library, MODEL_KEY, hnsw_min_size=1)
        rebuilt.graph = SavedGraph(tmp / f"rebuild-{n}", MODEL_KEY)  # a fresh folder: a full build, saved apart
        t0 = time.perf_counter()
        rebuilt.hnsw()
        rebuild_s = time.perf_counter() - t0
        exact = VectorIndex(library, MODEL_KEY, hnsw_min_size=10**12)
        exact.vectors = updated.vectors
        up_img, up_txt, up_ms = _recall(updated, exact, queries)
        re_img, re_txt, re_ms = _recall(rebuilt, exact, queries)
    finally:
        library.close()
    print(f"\n== {n:,} photos, then +{stats.added:,} new, {stats.removed} gone, {stats.updated} embedded again "
          f"(first build {first_build:.1f} s; loading the vectors {load_s:.2f} s)")
    print(f"  updated in place  {update_s:6.1f} s   recall@{K} image-like {up_img:.3f} text-like {up_txt:.3f}   "
          f"query p50 {pct(up_ms, 50):.2f} ms")
    print(f"  full rebuild      {rebuild_s:6.1f} s   recall@{K} image-like {re_img:.3f} text-like {re_txt:.3f}   "
          f"query p50 {pct(re_ms, 50):.2f} ms")
    print(f"  rebuild / update: {rebuild_s / update_s:.0f}x")


def main() -> None:
    run_sizes(__doc__, run, "100000", lambda ap: (ap.add_argument("--add", type=int, default=1000), ap.add_argument("--queries", type=int, default=200)))


if __name__ == "__main__":
    main()
