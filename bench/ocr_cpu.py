"""OCR on the CPU: photos/s with and without text, the detector's share, and the decode side vs small text.

Three measurements, one run, network off (``socket`` connect/getaddrinfo raise):

1. throughput of ``OcrEngine.read_file`` (read + decode to 1600 px + detector +
   recognition on the detected boxes) on shared COCO photos (little text) and
   on generated text photos (``clipdesk.ocr.samples``), photos/s each;
2. on the photos where nothing was found, the detector alone (RapidOCR with
   ``use_rec=False`` on the same decoded array) as a share of the full read:
   what a photo without text costs beyond "detect, find nothing, stop";
3. the decode side: 12 MP (4000 x 3000) photos with words rendered at small
   sizes, read at long side 1280 / 1600 / 2048 / 4000: words found and s/photo.

    .venv/bin/python bench/ocr_cpu.py             # 40 COCO + 8 text photos, 4 12 MP photos
    .venv/bin/python bench/ocr_cpu.py --coco 100
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import _common  # noqa: F401 - sets up sys.path
import numpy as np
from _common import CpuMeter, coco_images, machine_line, wait_quiet
from PIL import Image

from clipdesk.imageio import decode_to_fit, read_bytes
from clipdesk.ocr.engine import DEFAULT_SIDE, OcrEngine
from clipdesk.ocr.fold import fold_query, holds
from clipdesk.ocr.samples import SAMPLES, render, render_plain


def _no_network(*_a, **_k):
    raise OSError("network off (bench/ocr_cpu.py)")


def throughput(engine: OcrEngine, paths: list[Path]) -> tuple[float, list[float], list[Path]]:
    """(photos/s, per-photo seconds, the photos where nothing was found)."""
    times, empty = [], []
    with CpuMeter() as meter:
        start = time.perf_counter()
        for p in paths:
            t = time.perf_counter()
            result = engine.read_file(p)
            times.append(time.perf_counter() - t)
            if not result.lines:
                empty.append(p)
        wall = time.perf_counter() - start
    print(f"    (other processes: {meter.other:.2f} cores)")
    return len(paths) / wall, times, empty


def detector_share(engine: OcrEngine, paths: list[Path]) -> tuple[float, float]:
    """Medians over photos without text of (read + decode) / full and (detector alone) / full.

    Interleaved per photo, so load from other processes hits all three alike.
    """
    decode_shares, det_shares = [], []
    for p in paths:
        t = time.perf_counter()
        engine.read_file(p)
        full = time.perf_counter() - t
        t = time.perf_counter()
        _st, data = read_bytes(p)
        rgb = np.asarray(decode_to_fit(data, engine.side))[:, :, ::-1].copy()
        decoded = time.perf_counter() - t
        t = time.perf_counter()
        engine.ocr(rgb, use_rec=False, use_cls=False)
        det = time.perf_counter() - t
        decode_shares.append(decoded / full)
        det_shares.append(det / full)
    engine.ocr.update_params(use_rec=True)  # the call above changed the instance's defaults
    return statistics.median(decode_shares), statistics.median(det_shares)


SMALL_SIZES = (12, 16, 22)


def small_text_set(folder: Path, n: int, sizes=SMALL_SIZES) -> list[tuple[Path, list[str]]]:
    """12 MP photos, each with three lines at these font sizes (a sign across the street)."""
    out = []
    words = [("OPEN", "DAILY"), ("EXIT", "ONLY"), ("PLATFORM", "NINE"), ("HOTEL", "SAUNA")]
    for i in range(n):
        lines = []
        base = render_plain(4000, 3000, seed=i)
        for j, size in enumerate(sizes):
            text = f"{words[i % 4][0]} {j}{i} {words[i % 4][1]}"
            lines.append(text)
            sample = replace(SAMPLES[i % len(SAMPLES)], lines=(text,), size=size, angle=0.0)
            patch = render(sample, 1200, 160, seed=i * 3 + j)
            base.paste(patch, (300 + 900 * j, 600 + 700 * j))  # apart: each line is its own box
        path = folder / f"small{i}.jpg"
        base.save(path, quality=90)
        out.append((path, lines))
    return out


def side_sweep(photos: list[tuple[Path, list[str]]], sizes, sides=(1024, 1280, 1600, 2048)) -> None:
    sizes = " / ".join(f"{s} px" for s in sizes)
    print(f"3. decode side vs small text (12 MP photos; lines at {sizes} font size in the original):")
    print(f"   | side | lines read ({sizes}) | s/photo |")
    for side in sides:
        engine = OcrEngine(side)
        engine.read_file(photos[0][0])  # load the models outside the timing
        found = [0] * len(photos[0][1])
        wait_quiet(quiet=True)
        t = time.perf_counter()
        for path, lines in photos:
            read = [ln.text for ln in engine.read_file(path).lines]
            for j, line in enumerate(lines):
                found[j] += all(holds(read, fold_query(w)) for w in line.split())
        per = (time.perf_counter() - t) / len(photos)
        total = len(photos)
        print(f"   | {side} | " + " / ".join(f"{f}/{total}" for f in found) + f" | {per:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--coco", type=int, default=40, help="COCO photos to read")
    ap.add_argument("--small", type=int, default=4, help="12 MP photos for the side sweep (0: skip)")
    ap.add_argument("--sizes", type=int, nargs=3, default=SMALL_SIZES, help="font sizes of the sweep's lines")
    args = ap.parse_args()
    socket.socket.connect = _no_network
    socket.getaddrinfo = _no_network
    print(machine_line(), f"; onnxruntime threads: default (all {os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        text_paths = []
        for i in range(8):
            path = tmp / f"text{i}.jpg"
            render(SAMPLES[i % len(SAMPLES)], seed=i).save(path, quality=92)
            text_paths.append(path)
        engine = OcrEngine(DEFAULT_SIDE)
        t = time.perf_counter()
        engine.read_file(text_paths[0])
        print(f"model load + first photo: {time.perf_counter() - t:.2f} s")
        coco = coco_images()[: args.coco]
        sizes = [Image.open(p).size for p in coco]
        print(f"1. throughput (side {DEFAULT_SIDE}):")
        wait_quiet(quiet=True)
        rate, times, empty = throughput(engine, coco)
        print(f"   COCO: {len(coco)} photos (median {statistics.median(w for w, _ in sizes)} x "
              f"{statistics.median(h for _, h in sizes)}), {rate:.2f} photos/s, median {statistics.median(times):.3f} s;"
              f" text found in {len(coco) - len(empty)}")
        no_text = [p for p in coco if p in set(empty)]
        times_no = [t for p, t in zip(coco, times, strict=True) if p in set(empty)]
        times_yes = [t for p, t in zip(coco, times, strict=True) if p not in set(empty)]
        if times_no:
            print(f"   COCO without text: {1 / statistics.mean(times_no):.2f} photos/s; with text: "
                  + (f"{1 / statistics.mean(times_yes):.2f} photos/s" if times_yes else "none"))
        wait_quiet(quiet=True)
        rate, times, empty = throughput(engine, text_paths)
        print(f"   generated text photos: {len(text_paths)} (1200 x 800, 2 lines each), {rate:.2f} photos/s, "
              f"median {statistics.median(times):.3f} s; no text found in {len(empty)}")
        plain = []
        for i in range(8):
            path = tmp / f"plain{i}.jpg"
            render_plain(seed=i).save(path, quality=92)
            plain.append(path)
        wait_quiet(quiet=True)
        rate, times, empty = throughput(engine, plain)
        print(f"   generated photos without text: {len(plain)} (1200 x 800), {rate:.2f} photos/s")
        wait_quiet(quiet=True)
        decode, det = detector_share(engine, (no_text + plain)[:24])
        print(f"2. photos without text, share of the full read: reading + decoding {decode:.1%}, "
              f"the detector {det:.1%}, the rest (recognition of any false boxes, mapping) {1 - decode - det:.1%}")
        if args.small:
            side_sweep(small_text_set(tmp, args.small, args.sizes), args.sizes)


if __name__ == "__main__":
    main()
