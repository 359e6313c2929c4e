"""The scale targets in one run: open, first result, latency, recall, +1,000 photos absorbed, memory.

For each size N a temporary library gets N photos with structured 512-d vectors (``search_latency.py``'s
generator: Zipf clusters, photo-like held-out queries and text-like ones from another region of the sphere).
A *prepare* process builds what a library that has been used has: the vector file, the search graph (built,
calibrated on 48 text-like probes of the generator that are not among the measured queries, as the app
calibrates on its model's encoding of ``search/probes.py``'s prompts) and their manifests. The truth (exact
top-10 of every query, unfiltered and filtered) is computed there too.

Then a fresh *measure* process does what the app does, timed, with its resident memory read from /proc:

- open: ``VectorIndex(..., background=True)`` and the first text-like search, answered (exact in blocks when
  the graph is not in memory yet); then the graph loaded in the background;
- 200 queries one by one, k=10: p50/p95 latency and recall@10 against the truth, photo-like and text-like;
  the same with k=200 (the search pool the app asks for); filtered by a mask of 10 % and of 1 % of the photos;
- +1,000 photos written to the database (as the indexer's writer does), then the app's next open: the vector
  file refreshed, the graph in memory brought up to date and saved, with searches running all the while
  (their latency printed) and the new photos found afterwards;
- RSS before the library, after the searches, and the peak (VmHWM): no model is loaded, so RSS beyond the
  interpreter and its imports is what the library costs.

``--baseline REV`` also runs the measure process against a git worktree of REV (same library, same queries;
its own graph is built first) for the "nothing slower" comparison at the sizes where that code can run.

    .venv/bin/python bench/scale.py --sizes 100000                         # about 4 min on 2 cores
    .venv/bin/python bench/scale.py --sizes 100000,1000000 --baseline 69bdd78 --baseline-sizes 100000
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401 - sets up sys.path

if os.environ.get("CLIPDESK_BENCH_CODE"):  # a measure process of another revision: its clipdesk, not this one
    sys.path.insert(0, os.environ["CLIPDESK_BENCH_CODE"])
import numpy as np  # noqa: E402
from _common import REPO, pct, run_sizes  # noqa: E402
from search_latency import DIM, MODEL_KEY, fill_library, make_space, structured_vectors, text_like_queries

K = 10
POOL_K = 200
ADD = 1000


def _rss_mb() -> tuple[float, float]:
    status = Path("/proc/self/status").read_text()
    val = {line.split(":")[0]: float(line.split()[1]) / 1024 for line in status.splitlines()
           if line.startswith(("VmRSS", "VmHWM"))}
    return val["VmRSS"], val["VmHWM"]


def _masks(ids: np.ndarray) -> dict[str, np.ndarray]:
    return {"10%": ids % 10 == 3, "1%": ids % 100 == 7}


# -- the prepare process -----------------------------------------------------------------


def prepare(lib_dir: Path, n: int, out: Path, min_size: int) -> None:
    from clipdesk.store.db import Library
    from clipdesk.store.vectors import VectorIndex, load_vectors

    space = make_space(n)
    library = Library(lib_dir)
    t0 = time.perf_counter()
    fill_library(library, structured_vectors(n, 1, *space))
    fill_s = time.perf_counter() - t0
    # The probes are other text-like queries of the same "model" (the same text direction, other clusters): the
    # app's are its model's encoding of generic prompts, which share the modality gap with the user's queries.
    text = text_like_queries(148, 3, *space)
    queries = np.concatenate([structured_vectors(100, 2, *space), text[:100]])
    probes = text[100:]
    extra = structured_vectors(ADD, 5, *space)
    np.save(out / "queries.npy", queries)
    np.save(out / "probes.npy", probes)
    np.save(out / "extra.npy", extra)
    vectors = load_vectors(library, MODEL_KEY)
    truth = {"all": vectors.top_exact(queries, K), "pool": vectors.top_exact(queries, POOL_K)}
    for name, mask in _masks(vectors.ids).items():
        rows, _ = vectors.exact_top(queries, K, np.flatnonzero(mask))
        truth[name] = vectors.ids[rows]
    np.savez(out / "truth.npz", **truth)
    t0 = time.perf_counter()
    index = VectorIndex(library, MODEL_KEY, min_size, probes=lambda: probes)
    graph_s = 0.0
    if index.mode == "hnsw":
        index.hnsw()
        graph_s = time.perf_counter() - t0
    library.close()
    cal = {}
    manifests = [p for p in lib_dir.glob("**/*.json") if not p.name.endswith(".vec.json")]
    if manifests:
        cal = json.loads(manifests[0].read_text()).get("calibration") or {}
    (out / "prepared.json").write_text(json.dumps({"fill_s": fill_s, "graph_s": graph_s, "calibration": cal}))


# -- the measure process -----------------------------------------------------------------


def _insert_extra(library, n: int, extra: np.ndarray) -> None:
    from sqlalchemy import insert

    from clipdesk.store.models import Embedding, Photo, utcnow

    now = utcnow()
    with library.engine.begin() as conn:
        conn.execute(insert(Photo.__table__), [
            {"id": n + i + 1, "path": f"/bench/new/{i:07d}.jpg", "size": 1, "mtime_ns": i,
             "content_hash": f"new{i:037x}", "format": "JPEG", "width": 1, "height": 1, "frames": 1,
             "added_at": now} for i in range(len(extra))])
        conn.execute(insert(Embedding.__table__), [
            {"photo_id": n + i + 1, "model_key": MODEL_KEY, "dim": DIM, "vector": extra[i].astype("<f2").tobytes(),
             "content_hash": f"new{i:037x}", "created_at": now} for i in range(len(extra))])


def measure(lib_dir: Path, n: int, data: Path, min_size: int) -> dict:
    import inspect
    import threading

    rss_start, _ = _rss_mb()
    from clipdesk.store.db import Library
    from clipdesk.store.vectors import VectorIndex

    queries = np.load(data / "queries.npy")
    probes = np.load(data / "probes.npy")
    truth = dict(np.load(data / "truth.npz"))
    extra = np.load(data / "extra.npy")
    kwargs = {"probes": lambda: probes} if "probes" in inspect.signature(VectorIndex).parameters else {}
    rss_base, _ = _rss_mb()
    res: dict = {"rss_start": rss_start, "rss_base": rss_base}

    t0 = time.perf_counter()
    library = Library(lib_dir)
    index = VectorIndex(library, MODEL_KEY, min_size, background=True, **kwargs)
    res["open_s"] = time.perf_counter() - t0
    index.search(queries[150], K)
    res["first_s"] = time.perf_counter() - t0
    res["first_mode"] = index.search_mode
    phases = {"first result": _rss_mb()[0]}
    if index.mode == "hnsw":
        index.prepare_graph().join()
        res["graph_ready_s"] = time.perf_counter() - t0
        res["ef"] = getattr(index.hnsw(), "ef", None)
        phases["graph ready"] = _rss_mb()[0]
    for q in queries[:5]:
        index.search(q, K)

    def run(k: int, allow=None, truth_key="all"):
        lat, rec = [], []
        for j, q in enumerate(queries):
            t = time.perf_counter()
            ids, _ = index.search(q, k, allow)
            lat.append((time.perf_counter() - t) * 1000)
            rec.append(len(set(ids[:K].tolist()) & set(truth[truth_key][j][:K].tolist())) / K)
        return {"p50": pct(lat, 50), "p95": pct(lat, 95), "image": float(np.mean(rec[:100])),
                "text": float(np.mean(rec[100:])), "worst_text": float(np.min(rec[100:]))}

    res["k10"] = run(K)
    phases["k10"] = _rss_mb()[0]
    res["k200"] = run(POOL_K, truth_key="all")
    phases["k200"] = _rss_mb()[0]
    ids = index.vectors.ids
    for name, mask in _masks(ids).items():
        res[f"filter {name}"] = run(K, mask, name)
        phases[f"filter {name}"] = _rss_mb()[0]
    res["rss_searching"], res["hwm_searching"] = _rss_mb()
    res["rss_phases"] = phases

    # +1,000 photos: written, then the app's next open while searches go on.
    _insert_extra(library, n, extra)
    t0 = time.perf_counter()
    fresh = VectorIndex(library, MODEL_KEY, min_size, background=True, **kwargs)
    res["reopen_s"] = time.perf_counter() - t0
    during, stop = [], threading.Event()
    if fresh.mode == "hnsw":
        worker = fresh.prepare_graph()
        j = 0
        while worker.is_alive():
            t = time.perf_counter()
            fresh.search(queries[j % len(queries)], K)
            during.append((time.perf_counter() - t) * 1000)
            j += 1
        worker.join()
    stop.set()
    res["absorb_s"] = time.perf_counter() - t0
    res["absorb_stats"] = vars(fresh.graph.stats) if hasattr(fresh.graph, "stats") else {}
    found = [int(fresh.search(extra[i] / np.linalg.norm(extra[i]), 1)[0][0]) == n + i + 1 for i in range(0, ADD, 50)]
    res["absorbed_found"] = float(np.mean(found))
    if during:
        res["during"] = {"searches": len(during), "p50": pct(during, 50), "p95": pct(during, 95), "max": max(during)}
    res["rss_end"], res["hwm_end"] = _rss_mb()
    library.close()
    return res


# -- the driver ----------------------------------------------------------------------------


def _child(code_root: Path, *args: str) -> dict | None:
    env = {**os.environ, "CLIPDESK_BENCH_CODE": str(code_root)}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:])
        raise SystemExit(f"child {args[0]} failed")
    out = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(out[-1][7:]) if out else None


def _report(label: str, n: int, r: dict) -> None:
    mb = lambda x: f"{x:,.0f} MB"  # noqa: E731
    print(f"  [{label}] open {r['open_s']:.2f} s, first result {r['first_s']:.2f} s ({r['first_mode']})"
          + (f", graph ready {r['graph_ready_s']:.2f} s (ef {r.get('ef')})" if "graph_ready_s" in r else ""))
    for key in ("k10", "k200", "filter 10%", "filter 1%"):
        s = r[key]
        print(f"    {key:11s} p50 {s['p50']:6.2f} ms  p95 {s['p95']:6.2f} ms  recall@10 photo-like {s['image']:.3f}"
              f"  text-like {s['text']:.3f} (worst {s['worst_text']:.1f})")
    d = r.get("during")
    print(f"    +{ADD:,} photos: reopen {r['reopen_s']:.2f} s, absorbed in {r['absorb_s']:.2f} s "
          f"{r.get('absorb_stats', {})}, new photos found {r['absorbed_found']:.2f}"
          + (f"; {d['searches']} searches meanwhile p50 {d['p50']:.1f} / p95 {d['p95']:.1f} / max {d['max']:.0f} ms"
             if d else ""))
    print(f"    RSS: interpreter + imports {mb(r['rss_base'])}; searching {mb(r['rss_searching'])} "
          f"(+{mb(r['rss_searching'] - r['rss_base'])}); peak {mb(r['hwm_end'])} (+{mb(r['hwm_end'] - r['rss_base'])}); "
          f"end {mb(r['rss_end'])}")
    if "rss_phases" in r:
        print("    RSS by phase: " + ", ".join(f"{k} {v:,.0f}" for k, v in r["rss_phases"].items()) + " MB")


def run(n: int, args, tmp: Path) -> None:
    from clipdesk.config import DEFAULT_HNSW_MIN_SIZE

    where = args.keep or tmp
    data = where / f"data-{n}"
    lib_dir = where / f"lib-{n}"
    t0 = time.perf_counter()
    if not (args.keep and (data / "prepared.json").is_file() and lib_dir.is_dir()):
        data.mkdir(parents=True, exist_ok=True)
        _child(REPO, "prepare", str(lib_dir), str(n), str(data), str(DEFAULT_HNSW_MIN_SIZE))
    prepared = json.loads((data / "prepared.json").read_text())
    print(f"\n== {n:,} photos x {DIM}: prepared in {time.perf_counter() - t0:.0f} s (fill {prepared['fill_s']:.0f} s, "
          f"graph {prepared['graph_s']:.0f} s; calibration {prepared['calibration']})")
    sizes = {int(s) for s in args.baseline_sizes.split(",")} if args.baseline else set()
    runs = [("now", REPO)]
    if n in sizes:
        runs.append((f"baseline {args.baseline}", _worktree(args.baseline, tmp)))
    modes = [("default", DEFAULT_HNSW_MIN_SIZE)] + ([("graph", 1)] if n < DEFAULT_HNSW_MIN_SIZE else [])
    for mode, min_size in modes:
        # Side by side: each code's library copy with its own graph, measured in turns (load drifts over minutes).
        copies = {}
        for label, root in runs:
            copies[label] = base = tmp / f"lib-{n}-{label.split()[0]}-{mode}"
            subprocess.run(["cp", "-r", str(lib_dir), str(base)], check=True)
            if mode == "graph" or label != "now":
                _child(root, "build", str(base), str(n), str(data), str(min_size))  # as a used library has one
        for turn in range(args.rounds if len(runs) > 1 else 1):
            for label, root in (runs if turn % 2 == 0 else runs[::-1]):
                copy = copies[label].with_name(copies[label].name + f"-t{turn}")
                subprocess.run(["cp", "-r", str(copies[label]), str(copy)], check=True)  # the absorb step changes it
                subprocess.run(["sync"], check=True)  # a library at rest, not one whose 4 GB are being written back
                r = _child(root, "measure", str(copy), str(n), str(data), str(min_size))
                _report(f"{label}, {mode}: hnsw from {min_size:,}" + (f", turn {turn + 1}" if args.rounds > 1 else ""),
                        n, r)
                subprocess.run(["rm", "-rf", str(copy)], check=True)
        for base in copies.values():
            subprocess.run(["rm", "-rf", str(base)], check=True)


def build(lib_dir: Path, n: int, data: Path, min_size: int) -> None:
    import inspect

    from clipdesk.store.db import Library
    from clipdesk.store.vectors import VectorIndex

    probes = np.load(data / "probes.npy")
    kwargs = {"probes": lambda: probes} if "probes" in inspect.signature(VectorIndex).parameters else {}
    library = Library(lib_dir)
    index = VectorIndex(library, MODEL_KEY, min_size, **kwargs)
    if index.mode == "hnsw":
        index.hnsw()
    library.close()


def _worktree(rev: str, tmp: Path) -> Path:
    path = tmp / f"worktree-{rev}"
    if not path.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev], check=True,
                       capture_output=True)
    return path


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("prepare", "measure", "build"):
        step, lib_dir, n, data, min_size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), \
            int(sys.argv[5])
        if step == "prepare":
            prepare(lib_dir, n, data, min_size)
        elif step == "build":
            build(lib_dir, n, data, min_size)
        else:
            print("RESULT " + json.dumps(measure(lib_dir, n, data, min_size)))
        return

    def options(ap):
        ap.add_argument("--baseline", default=None, help="git revision to measure side by side")
        ap.add_argument("--baseline-sizes", default="100000", help="sizes at which the baseline runs")
        ap.add_argument("--rounds", type=int, default=2, help="turns of now / baseline, alternating")
        ap.add_argument("--keep", type=Path, default=None, help="prepare the libraries here once and reuse them")

    try:
        run_sizes(__doc__, run, "100000", options)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True)


if __name__ == "__main__":
    main()
