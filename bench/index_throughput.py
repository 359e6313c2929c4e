"""Pipeline efficiency: indexing throughput / model-only throughput, same model, same run.

- model-only: ``engine.encode_pixels`` on uint8 batches decoded beforehand
  (``imageio.read_photo(path, 224)``, not timed), batch by batch with the
  engine's batch size, for the same N photos;
- indexing: ``clipdesk.indexer.index`` over a folder into a fresh temporary
  library (every photo new), with the default decode workers unless
  ``--workers`` says otherwise. Includes walking, hashing, EXIF, decode pool
  start-up, SQLite writes: everything a user waits for.

The two alternate for ``--repeats`` rounds; each round gives a ratio
(indexing photos/s / model-only photos/s) and the median and range are
printed. The target is a ratio >= 0.8: the model, not the pipeline, should be
the bottleneck. Random weights (no download): speed does not depend on them.

    .venv/bin/python bench/index_throughput.py                      # coco_mini (239) + 96 12 MP photos
    .venv/bin/python bench/index_throughput.py --sets 12mp --workers 1 --threads 2
    .venv/bin/python bench/index_throughput.py --profile            # cProfile one indexing run
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401 - sets up sys.path
import numpy as np
from _common import CpuMeter, coco_images, machine_line, make_12mp_set, mean_mb, random_engine, wait_quiet

from clipdesk import decode_pool, indexer
from clipdesk.config import CoreConfig
from clipdesk.imageio import read_photo
from clipdesk.store.db import Library

CLEAN = 0.15  # a round counts as quiet when other processes used less than this many cores


def photo_folder(paths: list[Path], tmp: Path) -> Path:
    """A folder holding exactly ``paths``: the real folder when that is all of it, else symlinks."""
    parent = paths[0].parent
    if all(p.parent == parent for p in paths) and len(list(parent.glob("*"))) == len(paths):
        return parent
    folder = tmp / "photos"
    folder.mkdir()
    for p in paths:
        os.symlink(p, folder / p.name)
    return folder


def model_only(engine, pixels: np.ndarray) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(pixels), engine.batch_size):
        engine.encode_pixels(pixels[start : start + engine.batch_size])
    return len(pixels) / (time.perf_counter() - t0)


class Breakdown:
    """Where the indexing call's wall time went, seen from the calling thread:
    waiting for decoded photos, running the model, everything else (walk, SQLite, bookkeeping)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.wait = self.encode = 0.0
        self.first = None  # seconds from the start until the first batch went to the model
        self.t0 = 0.0

    def __enter__(self) -> Breakdown:
        self._decode, self._encode = decode_pool.decode, self.engine.encode_pixels
        decode_pool.decode = self._timed_decode
        self.engine.encode_pixels = self._timed_encode
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.total = time.perf_counter() - self.t0
        decode_pool.decode = self._decode
        del self.engine.encode_pixels  # back to the class's method

    def _timed_decode(self, *args, **kwargs):
        it = self._decode(*args, **kwargs)
        try:
            while True:
                t = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                if self.first is not None:  # steady state: the model has started
                    self.wait += time.perf_counter() - t
                yield item
        finally:
            it.close()

    def _timed_encode(self, pixels):
        t = time.perf_counter()
        if self.first is None:
            self.first = t - self.t0
        try:
            return self._encode(pixels)
        finally:
            self.encode += time.perf_counter() - t

    def line(self) -> str:
        first = self.first or 0.0
        other = self.total - first - self.wait - self.encode
        return (f"{self.total:.1f} s = until 1st batch decoded {first:.2f} + model {self.encode:.2f} "
                f"+ then waiting for decode {self.wait:.2f} + other (SQLite, bookkeeping) {other:.2f}")


def indexing(engine, folder: Path, n: int, tmp: Path, workers: int, profile: bool = False) -> tuple[float, str]:
    lib_dir = Path(tempfile.mkdtemp(dir=tmp, prefix="lib-"))
    library = Library(lib_dir)
    config = CoreConfig(decode_workers=workers, batch_size=engine.batch_size)
    prof = cProfile.Profile() if profile else None
    try:
        with Breakdown(engine) as parts:
            if prof:
                prof.enable()
            report = indexer.index(library, [folder], engine, config)
            if prof:
                prof.disable()
        elapsed = parts.total
    finally:
        library.close()
    if report.embedded != n or report.errors:
        raise SystemExit(f"indexing did not embed every photo: {report}")
    if prof:
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(15)
        print(out.getvalue())
    return n / elapsed, parts.line()


def run_set(label: str, paths: list[Path], engine, args, tmp: Path) -> list[float]:
    spec = engine.input_spec()
    pixels = np.stack([read_photo(p, spec.size, spec.squash).pixels for p in paths])  # also warms the page cache
    folder = photo_folder(paths, tmp)
    workers = CoreConfig(decode_workers=args.workers).workers()
    if len(paths) < indexer.INLINE_BELOW:
        workers = 0
    print(f"\n== {label}: {len(paths)} photos, mean {mean_mb(paths):.2f} MB; decode workers {workers}, "
          f"chunk {decode_pool.CHUNK}, batch {engine.batch_size}, torch threads {_torch_threads()}")
    rounds = []  # (model rate, its foreign load, index rate, its foreign load)
    for r in range(args.repeats):
        profile = args.profile and r == args.repeats - 1
        order = ("index", "model") if r % 2 else ("model", "index")  # alternate which goes first
        got = {}
        for what in order:
            if args.wait_quiet:
                wait_quiet(args.wait_quiet, max_wait=90.0)
            with CpuMeter() as meter:
                if what == "model":
                    rate = model_only(engine, pixels)
                else:
                    rate, breakdown = indexing(engine, folder, len(paths), tmp, args.workers, profile=profile)
            got[what] = (rate, meter.other)
        (rate_m, other_m), (rate_i, other_i) = got["model"], got["index"]
        rounds.append((rate_m, other_m, rate_i, other_i))
        print(f"  round {r + 1}: model-only {rate_m:6.2f} photos/s   indexing {rate_i:6.2f} photos/s   "
              f"ratio {rate_i / rate_m:.3f}   (other processes: {other_m:.2f} / {other_i:.2f} cores)")
        print(f"           indexing {breakdown}")
    ratios = [ri / rm for rm, _, ri, _ in rounds]
    clean = [ri / rm for rm, om, ri, oi in rounds if max(om, oi) < CLEAN]
    best = max(ri for _, _, ri, _ in rounds) / max(rm for rm, _, _, _ in rounds)
    med = statistics.median(ratios)
    print(f"  => model-only {statistics.median(r[0] for r in rounds):.2f} photos/s, indexing "
          f"{statistics.median(r[2] for r in rounds):.2f} photos/s (medians)")
    print(f"  => ratio: median {med:.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); "
          f"best/best {best:.3f}; quiet rounds ({len(clean)}/{len(rounds)}, other < {CLEAN} cores): "
          + (f"median {statistics.median(clean):.3f}" if clean else "none")
          + ("" if (statistics.median(clean) if clean else med) < 0.8 else "  [target 0.8 met]"))
    return clean or ratios


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="photos per set (default: all 239 coco_mini, 96 of 12 MP)")
    ap.add_argument("--model", default="ViT-B-32", help="open_clip architecture, random weights (default ViT-B-32)")
    ap.add_argument("--workers", type=int, default=-1, help="decode workers (-1: the default for this machine)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=0, help="override decode_pool.CHUNK")
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds per set (default 3)")
    ap.add_argument("--wait-quiet", type=float, default=0.25, metavar="CORES",
                    help="before each timed block wait (up to 90 s) until other processes use fewer cores "
                         "than this (default 0.25; 0 = do not wait)")
    ap.add_argument("--sets", default="coco,12mp", help="comma list of: coco, 12mp")
    ap.add_argument("--profile", action="store_true", help="cProfile the last indexing run of each set")
    ap.add_argument("--dir", type=Path, default=None, help="where the generated 12 MP JPEGs are cached")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.chunk:
        decode_pool.CHUNK = args.chunk
    engine = random_engine(args.model, args.batch_size)
    spec = engine.input_spec()
    engine.encode_pixels(np.zeros((engine.batch_size, spec.size, spec.size, 3), np.uint8))  # warm-up
    print(machine_line(torch=True))
    print(f"model: {args.model}, random weights, input {spec.size}px")
    results = {}
    with tempfile.TemporaryDirectory(prefix="clipdesk-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for name in args.sets.split(","):
            sub = Path(tempfile.mkdtemp(dir=tmp, prefix=name + "-"))
            if name == "coco":
                paths = coco_images()[: args.n or None]
                results[name] = run_set("coco_mini (~0.3 MP JPEG)", paths, engine, args, sub)
            elif name == "12mp":
                paths = make_12mp_set(args.n or 96, args.dir)
                results[name] = run_set("12 MP JPEG (4000x3000, q90)", paths, engine, args, sub)
            else:
                raise SystemExit(f"unknown set {name!r}")
    print("\nsummary (median of quiet rounds, else of all): "
          + ", ".join(f"{k} ratio {statistics.median(v):.3f}" for k, v in results.items()))


if __name__ == "__main__":
    main()
