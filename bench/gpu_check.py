"""One-call GPU check: index real photos on CUDA at fp16, search, caption; non-zero exit on any error.

Runs what a real NVIDIA user runs first, with random weights (no download is
possible on the lent machines): a full-size ViT-B-32 indexes N shared photos
(photos/s and peak GPU memory printed), text and similar searches run on the
result, the tiny CoCa captions a few photos at fp16, and fp16 vectors are
compared with fp32 ones on the same photos (the agreement a shared key would
need; half precision has its own key until this shows >= 0.9999 on real
weights). ``--device cpu`` runs the same path here (slowly) so the script
cannot rot unnoticed.

    scripts/gpu_check.sh                 # CUDA, 500 photos
    python bench/gpu_check.py --device cpu --photos 16 --precision bf16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

from _common import coco_images, machine_line, random_engine, shared_data


def photos(n: int) -> list[Path]:
    found = coco_images() + sorted((shared_data() / "imagenet_sample").glob("*.JPEG"))
    if len(found) < n:
        raise SystemExit(f"only {len(found)} shared photos, {n} asked for")
    return found[:n]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--arch", default="ViT-B-32", help="open_clip architecture, random weights (default ViT-B-32)")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--photos", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=-1)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from clipdesk.config import CoreConfig
    from clipdesk.indexer import index
    from clipdesk.search import Searcher, Term, parse_text_query
    from clipdesk.store.db import Library
    from clipdesk.store.queries import find_photo

    print(machine_line(torch=True))
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("FAIL: CUDA is not available to this PyTorch", torch.__version__, torch.version.cuda)
            return 2
        print("GPU:", torch.cuda.get_device_name(0), "CUDA", torch.version.cuda)
        torch.cuda.reset_peak_memory_stats()
    files = photos(args.photos)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(Path(tmp) / "lib")
        engine = random_engine(args.arch, batch_size=args.batch_size, device=args.device, precision=args.precision)
        print(f"model: {engine.spec.arch} random init on {engine.device} at {engine.precision}, key {engine.key}")
        start = time.perf_counter()
        report = index(lib, [str(f) for f in files], engine, CoreConfig(batch_size=args.batch_size,
                                                                         decode_workers=args.workers))
        took = time.perf_counter() - start
        print(f"indexed {report.embedded}/{report.found} photos in {took:.1f} s: {report.embedded / took:.1f} photos/s "
              f"(decode included), {report.errors} errors")
        if report.embedded != len(files) or report.errors:
            failures.append("indexing did not embed every photo")
        if args.device.startswith("cuda"):
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB allocated, "
                  f"{torch.cuda.max_memory_reserved() / 2**20:.0f} MiB reserved")

        searcher = Searcher(lib, engine, hnsw_min_size=10**9, cutoff=False)
        vectors = searcher.index.vectors.matrix
        if not np.isfinite(vectors).all():
            failures.append("non-finite embeddings")
        text = searcher.search(parse_text_query("a dog on a beach"), k=10)
        first = find_photo(lib, str(files[0]))
        similar = searcher.search([Term("photo", first)], k=10)
        by_file = searcher.search([Term("file", str(files[1]))], k=1)
        print(f"text search: {len(text.hits)} hits; similar: {len(similar.hits)} hits; "
              f"query file found itself first: {by_file.hits[0].path == str(files[1])}")
        if len(text.hits) != 10 or len(similar.hits) != 10 or by_file.hits[0].path != str(files[1]):
            failures.append("search")

        reference = random_engine(args.arch, batch_size=args.batch_size, device=args.device, precision="fp32")
        sample = [str(f) for f in files[:64]]  # random weights: a mechanics check, not proof for real ones
        agreement = (engine.encode_files(sample) * reference.encode_files(sample)).sum(1)
        print(f"{args.precision} vs fp32 on {len(sample)} photos: cosine min {agreement.min():.6f}, "
              f"mean {agreement.mean():.6f}")

        from clipdesk.captions.coca import CocaCaptioner, resolve_caption_model
        from clipdesk.imageio import read_photo

        captioner = CocaCaptioner(resolve_caption_model("tiny-coca"), device=args.device, precision=args.precision,
                                  max_len=16)
        size = captioner._engine.input_spec().size  # noqa: SLF001
        pixels = np.stack([read_photo(f, size).pixels for f in files[:8]])
        start = time.perf_counter()
        captions = captioner.caption_pixels(pixels, 3)
        print(f"tiny CoCa captions for 8 photos in {time.perf_counter() - start:.2f} s; first: {captions[0][:1]}")
        if not all(captions):
            failures.append("captions")
    if failures:
        print("FAIL:", ", ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - the check's whole point: any error is a failure, shown in full
        traceback.print_exc()
        sys.exit(1)
