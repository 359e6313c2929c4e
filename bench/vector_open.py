"""Opening a library's vectors: from SQLite vs from the vector file, and the first search, same run.

For each size N, a temporary library gets N photos with structured 512-d vectors (``search_latency.py``'s
generator). Timed, alternating, ``--repeats`` times each: ``VectorIndex(...)`` reading the vectors out of SQLite
(the vector file removed first) and reading them from the vector file (``store/vector_file.py``); then one exact
search of a text-like query. Printed: open time p50 of each, their ratio, the first query, and the file's size.

    .venv/bin/python bench/vector_open.py                                   # 100k (about 1 min)
    .venv/bin/python bench/vector_open.py --sizes 100000,1000000            # + 1M (about 8 min, 4 GB RAM)
"""

from __future__ import annotations

import time
from pathlib import Path

import _common  # noqa: F401 - sets up sys.path
from _common import pct, run_sizes, wait_quiet
from search_latency import MODEL_KEY, fill_library, make_space, structured_vectors, text_like_queries

from clipdesk.store.db import Library
from clipdesk.store.vector_file import VectorFile
from clipdesk.store.vectors import VectorIndex


def run(n: int, args, tmp: Path) -> None:
    space = make_space(n)
    library = Library(tmp / f"lib-{n}")
    try:
        fill_s = fill_library(library, structured_vectors(n, 1, *space))
        query = text_like_queries(1, 3, *space)[0]
        vf = VectorFile(library.vectors_dir, MODEL_KEY)
        from_db, from_file, first = [], [], []
        if args.wait_quiet:
            wait_quiet(args.wait_quiet, max_wait=60.0, quiet=True)
        for _ in range(args.repeats):
            for source in ("db", "file"):
                if source == "db":
                    for p in (vf.data_path, vf.ids_path, vf.manifest_path):
                        p.unlink(missing_ok=True)
                t0 = time.perf_counter()
                index = VectorIndex(library, MODEL_KEY, hnsw_min_size=10**12)
                opened = time.perf_counter() - t0
                t1 = time.perf_counter()
                index.search(query, 10)  # the first exact search converts the vectors to fp32
                first.append(time.perf_counter() - t1)
                (from_db if source == "db" else from_file).append(opened)
                if source == "file":
                    first[-1] = (opened, first[-1])
                assert (source == "db") or vf.data_path.is_file()
                del index
        size_mb = vf.data_path.stat().st_size / 1e6
    finally:
        library.close()
    db, fl = pct(from_db, 50), pct(from_file, 50)
    print(f"\n== {n:,} vectors x 512 (filled in {fill_s:.0f} s); {args.repeats} opens each, alternating")
    print(f"  from SQLite       p50 {db:6.2f} s   (includes writing the vector file, {size_mb:.0f} MB)")
    print(f"  from vector file  p50 {fl:6.2f} s   ratio {db / fl:.1f}x")
    firsts = [f for f in first if isinstance(f, tuple)]
    print(f"  from the file: open {pct([o for o, _ in firsts], 50):.2f} s + first exact search (text-like, k=10, "
          f"converting to fp32) {pct([q for _, q in firsts], 50):.2f} s = "
          f"{pct([o + q for o, q in firsts], 50):.2f} s to a first result")


def main() -> None:
    run_sizes(__doc__, run, "100000", lambda ap: (ap.add_argument("--repeats", type=int, default=3)))


if __name__ == "__main__":
    main()
