"""``clipdesk tune`` on 10,000 stored embeddings, on the CPU: every phase timed, against the 10-minute target.

    .venv/bin/python bench/tune_cpu.py [--photos 10000] [--arch ViT-B-32]

The library: the shared photos (COCO mini and the ImageNet sample, 1,239)
embedded with a real-size model with random weights (the same compute as
the pretrained one), then filled up to ``--photos`` rows, each a link to
one of those photos with its vector plus a little noise, so that there are
10,000 stored embeddings whose views can really be rendered and encoded;
the COCO photos and their copies carry a user caption (the first COCO one).
Then ``tuning.run.tune`` runs exactly as ``clipdesk tune`` does (default
options: views within a 240 s budget, 64 held-out photos, coco_mini as the
text check), and the bench prints each phase's seconds, the total, and
the total over the 600 s target. The quality figures of a random model
mean nothing here; the mechanics and the time do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import CpuMeter, machine_line, random_engine, shared_data, wait_quiet

TARGET_S = 600.0


def build_library(root: Path, engine, n: int) -> tuple[object, float]:
    import json

    from clipdesk.store.db import Library
    from clipdesk.store.models import Caption, Embedding, Photo, utcnow

    data = shared_data()
    files = sorted((data / "coco_mini" / "images").glob("*.jpg")) + sorted((data / "imagenet_sample").glob("*.JPEG"))
    # A caption per COCO photo and per copy of one (its first COCO caption, as if the user wrote it):
    # the pseudo-captions the text stage trains on and the guard checks with.
    first = {e["file"]: e["captions"][0]
             for e in json.loads((data / "coco_mini" / "captions.json").read_text())}
    t0 = time.perf_counter()
    vectors = np.concatenate([engine.encode_files([str(f) for f in files[i : i + 64]])
                              for i in range(0, len(files), 64)])
    encode_s = time.perf_counter() - t0
    links = root / "photos"
    links.mkdir()
    rng = np.random.default_rng(0)
    library = Library(root / "library")
    now = utcnow()
    with library.session() as s, s.begin():
        for i in range(n):
            src = i % len(files)
            path = files[src] if i < len(files) else links / f"p{i:05d}{files[src].suffix}"
            if i >= len(files):
                path.symlink_to(files[src])
            v = vectors[src] + (0.0 if i < len(files) else 0.05 * rng.normal(size=vectors.shape[1]) / 8)
            v = (v / np.linalg.norm(v)).astype("<f2")
            photo = Photo(path=str(path), size=1, mtime_ns=i, content_hash=f"bench{i:06d}", format="JPEG",
                          width=640, height=480, frames=1, added_at=now)
            s.add(photo)
            s.flush()
            s.add(Embedding(photo_id=photo.id, model_key=engine.key, dim=len(v), vector=v.tobytes(),
                            content_hash=photo.content_hash, created_at=now))
            if files[src].name in first:
                s.add(Caption(photo_id=photo.id, text=first[files[src].name], source="user"))
    return library, encode_s


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=10_000, help="stored embeddings in the library (default 10000)")
    p.add_argument("--arch", default="ViT-B-32")
    p.add_argument("--budget", type=float, default=240.0, help="the views' time budget, as tune --budget")
    args = p.parse_args()

    from clipdesk.tuning.run import TuneOptions, tune

    engine = random_engine(args.arch)
    print(machine_line(torch=True))
    with tempfile.TemporaryDirectory(prefix="clipdesk-bench-tune-") as tmp:
        library, encode_s = build_library(Path(tmp), engine, args.photos)
        print(f"library: {args.photos} stored embeddings of {args.arch} (random weights); "
              f"the 1,239 real photos encoded in {encode_s:.0f} s (not part of tuning)")
        wait_quiet()
        phases: dict[str, float] = {}

        def progress(p) -> None:
            phases.setdefault(p.phase, time.perf_counter())

        options = TuneOptions(budget_s=args.budget, coco=shared_data() / "coco_mini")
        with CpuMeter() as meter:
            t0 = time.perf_counter()
            report = tune(library, engine, options, progress=progress)
            total = time.perf_counter() - t0
        s = report.sizes
        print(f"sample: {s['training_photos']} training + {s['validation_photos']} validation photos x "
              f"{s['views_per_photo']} views = {s['encoded_views']} views encoded "
              f"({s['not_viewed_for_time']} photos left out by the {args.budget:.0f} s budget); "
              f"{s['heldout_photos']} held-out photos x 3 = {s['heldout_views']} views; "
              f"{s['near_duplicate_clusters']} near-duplicate clusters; {s['text_pairs']} caption texts; "
              f"coco_mini {s.get('coco_images', 0)} photos / {s.get('coco_captions', 0)} captions")
        print("phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))
        print(f"image loss chosen: {report.image_settings}; kept: {report.kept}")
        print(f"other processes used {meter.other:.2f} cores on average while it ran")
        print(f"tune on {args.photos} stored embeddings: {total:.0f} s; target {TARGET_S:.0f} s; "
              f"ratio {total / TARGET_S:.2f} ({'within' if total < TARGET_S else 'OVER'} the target)")
        library.close()
    return 0 if total < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
