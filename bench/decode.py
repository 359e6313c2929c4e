"""Decode cost: reduced-size (Pillow ``draft``) vs full decode, same files, same run.

What is compared, per image, from bytes already in memory (no disk I/O):

- model input (224 px centre crop, what ``imageio.read_photo(target=224)``
  returns): full decode + crop + resize  vs  ``draft`` (reduced-DCT) decode +
  crop + resize;
- thumbnail (256 px longest side): full decode + ``thumbnail``  vs
  ``Image.thumbnail`` on the unloaded image (which uses ``draft``);
- for reference, the production call ``imageio.read_photo(path, 224)``
  (reads the file, hashes it, parses EXIF, draft-decodes).

Modes run interleaved (file by file, rotating the order) for several rounds;
each round gives a full/draft ratio, and the median ratio and its range are
printed, so machine noise mostly cancels.

    .venv/bin/python bench/decode.py                 # 12 MP set (24 files) + coco_mini (60 files)
    .venv/bin/python bench/decode.py --n 64 --rounds 5
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import _common  # noqa: F401 - sets up sys.path
from _common import CpuMeter, coco_images, machine_line, make_12mp_set, mean_mb, wait_quiet
from PIL import Image, ImageOps

from clipdesk.imageio import read_photo, to_rgb

TARGET = 224
THUMB = 256


def model_input(data: bytes, draft: bool) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        if draft:
            im.draft("RGB", (TARGET, TARGET))
        im.load()
        im = to_rgb(ImageOps.exif_transpose(im))
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        square = im.crop((left, top, left + side, top + side))
        return square.resize((TARGET, TARGET), Image.Resampling.BICUBIC, reducing_gap=3.0)


def thumbnail(data: bytes, draft: bool) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        if not draft:
            im.load()  # full-size decode first: thumbnail()'s own draft() is then a no-op
        im.thumbnail((THUMB, THUMB), Image.Resampling.BICUBIC)
        return im


def production(path: Path) -> object:
    return read_photo(path, TARGET)


MODES = {
    "224 full": lambda path, data: model_input(data, draft=False),
    "224 draft": lambda path, data: model_input(data, draft=True),
    "thumb256 full": lambda path, data: thumbnail(data, draft=False),
    "thumb256 draft": lambda path, data: thumbnail(data, draft=True),
    "read_photo(224)": lambda path, data: production(path),
}


def run_set(label: str, paths: list[Path], rounds: int) -> dict[str, float]:
    blobs = [p.read_bytes() for p in paths]
    with Image.open(io.BytesIO(blobs[0])) as im:
        size = im.size
    names = list(MODES)
    for path, data in zip(paths[:2], blobs[:2], strict=True):  # warm-up: imports, page cache, allocator
        for name in names:
            MODES[name](path, data)
    per_round: list[dict[str, float]] = []
    wait_quiet(0.25, max_wait=120.0)
    meter = CpuMeter().__enter__()
    for r in range(rounds):
        totals = dict.fromkeys(names, 0.0)
        for i, (path, data) in enumerate(zip(paths, blobs, strict=True)):
            k = (i + r) % len(names)
            for name in names[k:] + names[:k]:  # rotate the order: no mode always runs first
                t0 = time.perf_counter()
                MODES[name](path, data)
                totals[name] += time.perf_counter() - t0
        per_round.append({name: totals[name] / len(paths) * 1000 for name in names})

    def med(name: str) -> float:
        return statistics.median(rd[name] for rd in per_round)

    def ratios(a: str, b: str) -> list[float]:
        return [rd[a] / rd[b] for rd in per_round]

    meter.__exit__(None, None, None)
    print(f"\n== {label}: {len(paths)} files, {size[0]}x{size[1]}, mean {mean_mb(paths):.2f} MB, "
          f"{rounds} rounds (ms/img = median over rounds)  [other processes: {meter.other:.2f} cores]")
    for name in names:
        print(f"  {name:<16} {med(name):8.1f} ms/img")
    out = {}
    for a, b in (("224 full", "224 draft"), ("thumb256 full", "thumb256 draft")):
        rs = ratios(a, b)
        out[f"{a} / {b}"] = statistics.median(rs)
        print(f"  speed-up {a} / {b}: {statistics.median(rs):.2f}x  (rounds: {min(rs):.2f}-{max(rs):.2f})")
    rs = ratios("read_photo(224)", "224 draft")
    print(f"  read_photo(224) / bare draft decode: {statistics.median(rs):.2f}x "
          "(hash + EXIF + file read overhead)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=24, help="12 MP files to decode (default 24)")
    ap.add_argument("--small", type=int, default=60, help="coco_mini files (default 60; 0 to skip)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where the generated 12 MP JPEGs are cached")
    args = ap.parse_args()
    print(machine_line())
    run_set("12 MP JPEG (upscaled COCO + grain, q90)", make_12mp_set(args.n, args.dir), args.rounds)
    if args.small:
        run_set("coco_mini JPEG (~0.3 MP)", coco_images()[: args.small], args.rounds)


if __name__ == "__main__":
    main()
