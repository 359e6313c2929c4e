"""ONNX Runtime vs torch on the CPU: image and text throughput of the same ViT-B-32 weights, and agreement.

Random weights (no download), alternating runs in one process so machine load
hits both alike. ``python bench/onnx_vs_torch.py [--reps 5] [--arch ViT-B-32]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine_line, random_engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    from safetensors.torch import save_file

    from clipdesk.engine.onnx_engine import OnnxEngine
    from clipdesk.engine.onnx_export import export_arch
    from clipdesk.engine.registry import ModelSpec

    print(machine_line(torch=True))
    torch_engine = random_engine(args.arch, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "w.safetensors"
        save_file({k: v.contiguous() for k, v in torch_engine.model.state_dict().items()}, str(weights))
        export_arch(args.arch, Path(tmp) / "onnx")
        os.environ["CLIPDESK_ONNX_PATH"] = str(Path(tmp) / "onnx")
        onnx_engine = OnnxEngine(ModelSpec("bench", args.arch, checkpoint=str(weights)), "cpu", args.batch)
        onnx_engine.model  # noqa: B018 - load outside the timing
        size = onnx_engine.input_spec().size
        pixels = np.random.default_rng(0).integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8)
        texts = [f"a photo of a dog number {i} on a beach at night" for i in range(args.batch)]
        cos_img = (onnx_engine.encode_pixels(pixels) * torch_engine.encode_pixels(pixels)).sum(1).min()
        cos_txt = (onnx_engine.encode_text(texts) * torch_engine.encode_text(texts)).sum(1).min()
        times: dict[str, list[float]] = {}
        for _ in range(args.reps):
            for name, engine in (("torch", torch_engine), ("onnx", onnx_engine)):
                for kind, fn, data in (("image", engine.encode_pixels, pixels), ("text", engine.encode_text, texts)):
                    start = time.perf_counter()
                    fn(data)
                    times.setdefault(f"{name} {kind}", []).append(time.perf_counter() - start)
    rate = {k: args.batch / float(np.median(v)) for k, v in times.items()}
    for kind in ("image", "text"):
        print(f"{kind}: torch {rate['torch ' + kind]:.1f}/s, onnx {rate['onnx ' + kind]:.1f}/s, "
              f"onnx/torch {rate['onnx ' + kind] / rate['torch ' + kind]:.2f}x (median of {args.reps})")
    print(f"agreement: min cosine image {cos_img:.5f}, text {cos_txt:.5f}")


if __name__ == "__main__":
    main()
