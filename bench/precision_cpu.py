"""Image encoding at fp32, fp16 and bf16 on this machine's CPU, side by side, and how far the vectors move.

Random full-size weights (speed does not depend on them; agreement does, so the cosine figures only say
that the half-precision paths compute the same function, not what real weights would give). Rounds
alternate between the precisions so that a change in machine load hits all three alike.

    .venv/bin/python bench/precision_cpu.py --arch ViT-B-32 --rounds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import coco_images, machine_line, random_engine, wait_quiet

from clipdesk.imageio import read_photo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="ViT-B-32")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(machine_line(torch=True))
    precisions = ("fp32", "fp16", "bf16")
    engines = {prec: random_engine(args.arch, batch_size=args.batch, precision=prec) for prec in precisions}
    size = engines["fp32"].input_spec().size
    pixels = np.stack([read_photo(f, size).pixels for f in coco_images()[: args.batch]])
    vectors = {prec: e.encode_pixels(pixels) for prec, e in engines.items()}  # also warms each up
    times: dict[str, list[float]] = {prec: [] for prec in precisions}
    wait_quiet()
    for _ in range(args.rounds):
        for prec, engine in engines.items():
            start = time.perf_counter()
            engine.encode_pixels(pixels)
            times[prec].append(time.perf_counter() - start)
    base = min(times["fp32"])
    for prec in precisions:
        best = min(times[prec])
        cos = (vectors[prec] * vectors["fp32"]).sum(1)
        print(f"{prec}: {args.batch / best:5.1f} img/s (best of {args.rounds}), {base / best:.2f}x fp32; "
              f"cosine to fp32 min {cos.min():.6f} mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
