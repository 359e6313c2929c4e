"""Search latency: exact (numpy) vs HNSW, through the real ``VectorIndex``, same queries, same run.

For each size N, a temporary library gets N photos with 512-d fp16 vectors
(the real schema, inserted with SQLAlchemy core in big transactions). The
vectors are structured, roughly like CLIP image embeddings: a shared mean
direction, Zipf-sized clusters, a 16-d local subspace per cluster and a
little isotropic noise, unit-normalised. Uniform random vectors would make
HNSW look far worse than it is on real embeddings (perf-facts: recall 0.11).

Then, for the same queries (half held-out vectors from the same
distribution, half "text-like" ones from another region of the sphere, as
CLIP's text embeddings are), interleaved one by one:

- exact: ``VectorIndex(hnsw_min_size=huge).search(q, 10)`` (fp32 matrix @ query, argpartition);
- HNSW: ``VectorIndex(hnsw_min_size=1).search(q, 10)`` (M=16, ef_construction=200, ef=200).

Printed per size: p50/p95 latency of each, the exact/HNSW ratio, HNSW
recall@10 against exact, HNSW build time and index size, vector load time.

    .venv/bin/python bench/search_latency.py                          # 10k, 100k (~3 min)
    .venv/bin/python bench/search_latency.py --sizes 300000,1000000   # long: HNSW build ~4 min per 300k
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401 - sets up sys.path
import numpy as np
from _common import CpuMeter, machine_line, pct, wait_quiet
from sqlalchemy import insert

from clipdesk.store import vectors as vectors_mod
from clipdesk.store.db import Library
from clipdesk.store.models import Embedding, Photo, utcnow
from clipdesk.store.vectors import VectorIndex

DIM = 512
MODEL_KEY = "bench:structured-512"
K = 10


def structured_vectors(n: int, seed: int, centres: np.ndarray, bases: np.ndarray, weights: np.ndarray,
                       mean_dir: np.ndarray) -> np.ndarray:
    """``n`` unit vectors: mean direction + cluster centre + local 16-d variation + noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    step = 4096  # bases[c] is step x 16 x 512 floats
    for start in range(0, n, step):
        m = min(step, n - start)
        c = rng.choice(len(centres), size=m, p=weights)
        z = rng.standard_normal((m, bases.shape[1])).astype(np.float32) / np.sqrt(bases.shape[1])
        local = np.matmul(z[:, None, :], bases[c])[:, 0, :]
        noise = rng.standard_normal((m, DIM)).astype(np.float32) / np.sqrt(DIM)
        v = 0.55 * mean_dir + 0.75 * centres[c] + 0.55 * local + 0.25 * noise
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def text_like_queries(n: int, seed: int, centres: np.ndarray, bases: np.ndarray, weights: np.ndarray,
                      mean_dir: np.ndarray) -> np.ndarray:
    """Queries from another region of the sphere, as CLIP text embeddings are (the
    modality gap): a text direction + a weaker pull towards one cluster. Their
    best matches score ~0.4 against ~0.85 for image queries: harder for HNSW."""
    rng = np.random.default_rng(seed)
    text_dir = rng.standard_normal(DIM).astype(np.float32)
    text_dir /= np.linalg.norm(text_dir)
    c = rng.choice(len(centres), size=n, p=weights)
    z = rng.standard_normal((n, bases.shape[1])).astype(np.float32) / np.sqrt(bases.shape[1])
    local = np.matmul(z[:, None, :], bases[c])[:, 0, :]
    noise = rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    q = 0.8 * text_dir + 0.45 * centres[c] + 0.3 * local + 0.3 * noise
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def make_space(n: int, seed: int = 0):
    """Cluster structure for a library of ``n`` photos (about one cluster per 100 photos)."""
    rng = np.random.default_rng(seed)
    n_clusters = max(10, n // 100)
    local_dim = 16
    mean_dir = rng.standard_normal(DIM).astype(np.float32)
    mean_dir /= np.linalg.norm(mean_dir)
    centres = rng.standard_normal((n_clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.standard_normal((n_clusters, local_dim, DIM)).astype(np.float32)
    bases /= np.linalg.norm(bases, axis=2, keepdims=True)
    weights = 1.0 / np.arange(1, n_clusters + 1) ** 0.8  # Zipf-like: a few big events, many small ones
    weights /= weights.sum()
    return centres, bases, weights, mean_dir


def fill_library(library: Library, vecs: np.ndarray) -> float:
    """Insert one photo + one fp16 embedding per row; returns seconds."""
    t0 = time.perf_counter()
    now = utcnow()
    step = 20_000
    with library.engine.begin() as conn:
        for start in range(0, len(vecs), step):
            rows = range(start, min(start + step, len(vecs)))
            conn.execute(insert(Photo.__table__), [
                {"id": i + 1, "path": f"/bench/photos/{i:07d}.jpg", "size": 1000 + i, "mtime_ns": i,
                 "content_hash": f"{i:040x}", "format": "JPEG", "width": 4000, "height": 3000, "frames": 1,
                 "added_at": now} for i in rows
            ])
            blobs = vecs[start : start + step].astype("<f2")
            conn.execute(insert(Embedding.__table__), [
                {"photo_id": i + 1, "model_key": MODEL_KEY, "dim": DIM, "vector": blobs[i - start].tobytes(),
                 "content_hash": f"{i:040x}", "created_at": now} for i in rows
            ])
    return time.perf_counter() - t0


def run_size(n: int, args, tmp: Path) -> dict:
    space = make_space(n)
    vecs = structured_vectors(n, 1, *space)
    half = args.queries // 2
    queries = np.concatenate([structured_vectors(half, 2, *space),  # image-like, held out: not in the library
                              text_like_queries(args.queries - half, 3, *space)])
    library = Library(tmp / f"lib-{n}")
    try:
        fill_s = fill_library(library, vecs)
        del vecs
        t0 = time.perf_counter()
        exact = VectorIndex(library, MODEL_KEY, hnsw_min_size=10**12)
        load_s = time.perf_counter() - t0
        if args.exact_only:
            return _exact_only(n, exact, queries, fill_s, load_s, args)
        hnsw = VectorIndex(library, MODEL_KEY, hnsw_min_size=1)
        hnsw.vectors = exact.vectors  # same arrays: the load was timed once above
        assert exact.mode == "exact" and hnsw.mode == "hnsw"
        if args.wait_quiet:
            wait_quiet(args.wait_quiet, max_wait=60.0, quiet=True)
        with CpuMeter() as build_meter:
            t0 = time.perf_counter()
            hnsw.hnsw()  # builds and saves atomically, as the app does on first search
            build_s = time.perf_counter() - t0
        index_mb = sum(p.stat().st_size for p in library.vectors_dir.glob("*.hnsw")) / 1e6
        for q in queries[:5]:  # warm-up
            exact.search(q, K)
            hnsw.search(q, K)
        if args.wait_quiet:
            wait_quiet(args.wait_quiet, max_wait=60.0, quiet=True)
        t_exact, t_hnsw, recalls = [], [], []
        with CpuMeter() as query_meter:
            for i, q in enumerate(queries):
                order = (exact, hnsw) if i % 2 == 0 else (hnsw, exact)
                got = {}
                for vi in order:
                    t0 = time.perf_counter()
                    ids, _ = vi.search(q, K)
                    dt = (time.perf_counter() - t0) * 1000
                    (t_exact if vi is exact else t_hnsw).append(dt)
                    got[id(vi)] = ids
                recalls.append(len(set(got[id(exact)].tolist()) & set(got[id(hnsw)].tolist())) / K)
        # Filtered search (a folder or date filter): an allow-mask over 10% of the photos.
        allow = np.random.default_rng(4).random(len(exact.vectors)) < 0.10
        f_exact, f_hnsw, f_recalls = [], [], []
        for i, q in enumerate(queries[: args.filtered]):
            order = (exact, hnsw) if i % 2 == 0 else (hnsw, exact)
            got = {}
            for vi in order:
                t0 = time.perf_counter()
                ids, _ = vi.search(q, K, allow)
                (f_exact if vi is exact else f_hnsw).append((time.perf_counter() - t0) * 1000)
                got[id(vi)] = ids
            f_recalls.append(len(set(got[id(exact)].tolist()) & set(got[id(hnsw)].tolist())) / K)
    finally:
        library.close()
    res = {
        "n": n, "fill_s": fill_s, "load_s": load_s, "build_s": build_s, "index_mb": index_mb,
        "exact_p50": pct(t_exact, 50), "exact_p95": pct(t_exact, 95),
        "hnsw_p50": pct(t_hnsw, 50), "hnsw_p95": pct(t_hnsw, 95),
        "recall": statistics.mean(recalls), "recall_min": min(recalls),
        "recall_image": statistics.mean(recalls[:half]), "recall_text": statistics.mean(recalls[half:]),
        "other_build": build_meter.other, "other_query": query_meter.other,
        "f_exact_p50": pct(f_exact, 50) if f_exact else float("nan"),
        "f_hnsw_p50": pct(f_hnsw, 50) if f_hnsw else float("nan"),
        "f_recall": statistics.mean(f_recalls) if f_recalls else float("nan"),
    }
    res["ratio_p50"] = res["exact_p50"] / res["hnsw_p50"]
    res["ratio_p95"] = res["exact_p95"] / res["hnsw_p95"]
    print(f"\n== {n:,} vectors x {DIM} (fp16 on disk, fp32 in RAM); {len(queries)} queries "
          f"({half} image-like held out, {len(queries) - half} text-like), k={K}")
    print(f"  fill SQLite {fill_s:.1f} s; load vectors {load_s:.2f} s; HNSW build {build_s:.1f} s "
          f"(M={vectors_mod.HNSW_M}, ef_construction={vectors_mod.HNSW_EF_CONSTRUCTION}), index file {index_mb:.0f} MB"
          f"  [other processes: {build_meter.other:.2f} cores]")
    print(f"  exact  p50 {res['exact_p50']:7.2f} ms   p95 {res['exact_p95']:7.2f} ms")
    print(f"  HNSW   p50 {res['hnsw_p50']:7.2f} ms   p95 {res['hnsw_p95']:7.2f} ms   (ef={vectors_mod.HNSW_EF_SEARCH})")
    print(f"  exact/HNSW latency ratio: p50 {res['ratio_p50']:.1f}x, p95 {res['ratio_p95']:.1f}x; "
          f"HNSW recall@{K} vs exact {res['recall']:.3f} (image-like {res['recall_image']:.3f}, "
          f"text-like {res['recall_text']:.3f}, worst query {res['recall_min']:.1f})"
          f"  [other processes: {query_meter.other:.2f} cores]")
    if f_exact:
        print(f"  filtered (allow-mask over 10% of photos, {len(f_exact)} queries): exact p50 {res['f_exact_p50']:.2f} ms, "
              f"HNSW p50 {res['f_hnsw_p50']:.2f} ms (ratio {res['f_exact_p50'] / res['f_hnsw_p50']:.2f}x), "
              f"HNSW recall@{K} {res['f_recall']:.3f}")
    return res


def _exact_only(n, exact, queries, fill_s, load_s, args) -> dict:
    """--exact-only: the numpy path alone (no HNSW build), e.g. to recheck 1M in ~2 min."""
    for q in queries[:5]:
        exact.search(q, K)
    if args.wait_quiet:
        wait_quiet(args.wait_quiet, max_wait=60.0, quiet=True)
    times = []
    with CpuMeter() as meter:
        for q in queries:
            t0 = time.perf_counter()
            exact.search(q, K)
            times.append((time.perf_counter() - t0) * 1000)
    nan = float("nan")
    res = {"n": n, "fill_s": fill_s, "load_s": load_s, "build_s": nan, "exact_p50": pct(times, 50),
           "exact_p95": pct(times, 95), "hnsw_p50": nan, "hnsw_p95": nan, "ratio_p50": nan, "recall": nan}
    print(f"\n== {n:,} vectors, exact only: load {load_s:.2f} s; p50 {res['exact_p50']:.2f} ms, "
          f"p95 {res['exact_p95']:.2f} ms  [other processes: {meter.other:.2f} cores]")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="comma list of library sizes (default 10000,100000)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--filtered", type=int, default=50, help="queries also run with a 10%% allow-mask (0: skip)")
    ap.add_argument("--wait-quiet", type=float, default=0.25, metavar="CORES",
                    help="wait (up to 60 s) before timed blocks until other processes use fewer cores (0: don't)")
    ap.add_argument("--exact-only", action="store_true", help="skip HNSW (no build): exact latency only")
    ap.add_argument("--tmp", type=Path, default=None, help="where the temporary libraries go")
    args = ap.parse_args()
    print(machine_line())
    from importlib.metadata import version

    print(f"usearch {version('usearch')}; query = VectorIndex.search(q, k={K}) incl. top-k sort")
    results = []
    with tempfile.TemporaryDirectory(prefix="clipdesk-bench-search-", dir=args.tmp) as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            results.append(run_size(n, args, Path(tmp)))
    print("\nsummary:")
    print(f"  {'N':>9}  {'exact p50':>9}  {'exact p95':>9}  {'HNSW p50':>8}  {'HNSW p95':>8}  {'ratio p50':>9}  "
          f"{'recall@10':>9}  {'build s':>7}  {'load s':>6}")
    for r in results:
        print(f"  {r['n']:>9,}  {r['exact_p50']:9.2f}  {r['exact_p95']:9.2f}  {r['hnsw_p50']:8.2f}  {r['hnsw_p95']:8.2f}  "
              f"{r['ratio_p50']:9.1f}  {r['recall']:9.3f}  {r['build_s']:7.1f}  {r['load_s']:6.2f}")


if __name__ == "__main__":
    main()
