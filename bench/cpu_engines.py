"""CPU inference engines side by side: torch fp32 and bf16, ONNX Runtime fp32 and int8; speed and agreement.

One process, one set of random ViT-B-32 weights (no download) scaled ``--scale`` times (as
tests/core/test_onnx_engine.py does) so that different photos get clearly different vectors: with
plain random init every photo lands in nearly one direction, where any two engines "agree". Speed
does not depend on the weights; agreement does, so the overlap figures say that int8 computes the
same function closely enough to rank alike, not what real weights would give.

Timing: rounds alternate between the engines (images then texts, batch 32) so that a change in
machine load hits all alike; the median per engine is reported, with the load before and the
cores other processes used during the timing.

Agreement, on the 239 COCO photos of shared/data/coco_mini and one caption each of the first
``--queries`` of them: cosine of int8 (and bf16) vectors to fp32 ones; top-10 overlap of text
queries (caption vs photos, each precision in its own space) and of image queries (each photo vs
the others).

    .venv/bin/python bench/cpu_engines.py [--arch ViT-B-32] [--reps 5] [--variants matmul-pc,matmul,all-pc]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import CpuMeter, coco_images, machine_line, shared_data, wait_quiet

# int8 recipes to compare (the first is the engine's own, onnx_int8.RECIPE): ops quantized, per-channel scales,
# node names kept at fp32.
VARIANTS = {"mlp-pc": (("MatMul",), True, ("/attn/",)), "matmul-pc": (("MatMul",), True, ()),
            "matmul": (("MatMul",), False, ()), "all-pc": (("MatMul", "Conv", "Gather"), True, ())}


def scaled_checkpoint(arch: str, scale: float, dest: Path) -> Path:
    import open_clip
    import torch
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(arch, pretrained=None)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("visual.", "transformer.")) or name == "text_projection":
                p.mul_(scale)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(dest))
    return dest


def int8_engine(spec, batch: int, variant: str):
    from clipdesk.engine import onnx_int8
    from clipdesk.engine.onnx_engine import OnnxEngine

    saved = onnx_int8.RECIPE, onnx_int8.OPS, onnx_int8.PER_CHANNEL, onnx_int8.KEEP_FP32
    if variant != "mlp-pc":  # the recipe names the cached file's identity: one file per variant
        onnx_int8.OPS, onnx_int8.PER_CHANNEL, onnx_int8.KEEP_FP32 = VARIANTS[variant]
        onnx_int8.RECIPE = f"bench-{variant}"
    try:
        engine = OnnxEngine(spec, "cpu", batch, precision="int8")
        start = time.perf_counter()
        engine.model  # noqa: B018 - quantizes (first use) and loads, outside the timing
        print(f"  int8 {variant}: quantized and loaded in {time.perf_counter() - start:.1f} s")
    finally:
        onnx_int8.RECIPE, onnx_int8.OPS, onnx_int8.PER_CHANNEL, onnx_int8.KEEP_FP32 = saved
    return engine


def overlap(queries_a, base_a, queries_b, base_b, k: int = 10, exclude_self: bool = False) -> np.ndarray:
    """Per query: the share of the top-``k`` of ``base_a`` by ``queries_a`` also in the top-``k`` by b."""
    def top(q, base):
        sims = q @ base.T
        if exclude_self:
            np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    ta, tb = top(queries_a, base_a), top(queries_b, base_b)
    return np.array([len(set(a) & set(b)) / k for a, b in zip(ta, tb, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--scale", type=float, default=2.0, help="random weights times this (spreads the vectors)")
    parser.add_argument("--weights", type=Path, help="a real open_clip .safetensors for --arch instead of random ones")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--variants", default="mlp-pc", help=f"int8 recipes: comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="skip the agreement part")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    os.environ["CLIPDESK_MODELS"] = str(Path(tmp.name) / "models")  # the int8 cache and digests: thrown away
    from clipdesk.engine.clip import ClipEngine
    from clipdesk.engine.onnx_engine import OnnxEngine
    from clipdesk.engine.onnx_export import export_arch
    from clipdesk.engine.registry import ModelSpec
    from clipdesk.imageio import read_photo

    print(machine_line(torch=True))
    load_before = os.getloadavg()
    export_arch(args.arch, Path(tmp.name) / "onnx")
    os.environ["CLIPDESK_ONNX_PATH"] = str(Path(tmp.name) / "onnx")
    weights = args.weights or scaled_checkpoint(args.arch, args.scale, Path(tmp.name) / "w.safetensors")
    what = f"weights {args.weights.name}" if args.weights else f"random weights x{args.scale:g}"
    spec = ModelSpec("bench", args.arch, checkpoint=str(weights))
    engines = {"torch fp32": ClipEngine(spec, "cpu", args.batch, precision="fp32")}
    if not args.no_bf16:
        engines["torch bf16"] = ClipEngine(spec, "cpu", args.batch, precision="bf16")
    engines["onnx fp32"] = OnnxEngine(spec, "cpu", args.batch)
    for variant in args.variants.split(","):
        engines[f"onnx int8 {variant}"] = int8_engine(spec, args.batch, variant)
    for engine in engines.values():
        engine.model  # noqa: B018 - load outside the timing

    # -- speed -----------------------------------------------------------------
    size = engines["onnx fp32"].input_spec().size
    photos = coco_images()
    pixels = np.stack([read_photo(p, size).pixels for p in photos[: args.batch]])
    entries = json.loads((shared_data() / "coco_mini" / "captions.json").read_text())
    texts = [e["captions"][1] for e in entries[: args.batch]]
    for engine in engines.values():  # warm-up
        engine.encode_pixels(pixels[:4])
        engine.encode_text(texts[:4])
    foreign_before = wait_quiet()
    times: dict[tuple[str, str], list[float]] = {}
    with CpuMeter() as meter:
        for _ in range(args.reps):
            for name, engine in engines.items():
                for kind, fn, data in (("images", engine.encode_pixels, pixels), ("texts", engine.encode_text, texts)):
                    start = time.perf_counter()
                    fn(data)
                    times.setdefault((name, kind), []).append(time.perf_counter() - start)
    print(f"load avg before {load_before[0]:.2f}; other processes: {foreign_before:.2f} cores just before the "
          f"timing, {meter.other:.2f} cores during it ({meter.own:.2f} ours)")
    rate = {key: args.batch / float(np.median(v)) for key, v in times.items()}
    for kind in ("images", "texts"):
        base = rate[("torch fp32", kind)]
        onnx = rate[("onnx fp32", kind)]
        cells = [f"{name} {rate[(name, kind)]:.1f}/s ({rate[(name, kind)] / base:.2f}x torch, "
                 f"{rate[(name, kind)] / onnx:.2f}x onnx fp32)" for name in engines]
        print(f"{kind} per s, median of {args.reps}, batch {args.batch}:\n  " + "\n  ".join(cells))

    if args.speed_only:
        tmp.cleanup()
        return
    # -- agreement on real photos ------------------------------------------------
    all_pixels = np.stack([read_photo(p, size).pixels for p in photos])
    captions = [e["captions"][0] for e in entries[: args.queries]]
    ref = engines["onnx fp32"]
    ref_img, ref_txt = ref.encode_pixels(all_pixels), ref.encode_text(captions)
    off = (ref_img @ ref_img.T)[~np.eye(len(ref_img), dtype=bool)]
    print(f"agreement on {len(photos)} photos, {len(captions)} caption queries ({what}; fp32 "
          f"photo-photo cosine mean {off.mean():.3f}, max {off.max():.3f}; chance top-10 overlap "
          f"{10 / len(photos):.2f}):")
    for name, engine in engines.items():
        if name == "onnx fp32":
            continue
        img, txt = engine.encode_pixels(all_pixels), engine.encode_text(captions)
        cos_img, cos_txt = (img * ref_img).sum(1), (txt * ref_txt).sum(1)
        text_q = overlap(txt, img, ref_txt, ref_img)
        image_q = overlap(img, img, ref_img, ref_img, exclude_self=True)
        shuffled = overlap(txt, img, ref_txt[np.roll(np.arange(len(ref_txt)), 1)], ref_img)
        print(f"  {name} vs onnx fp32: cosine images min {cos_img.min():.4f} mean {cos_img.mean():.4f}, texts min "
              f"{cos_txt.min():.4f} mean {cos_txt.mean():.4f}; top-10 overlap text->image mean {text_q.mean():.3f} "
              f"(min {text_q.min():.1f}), image->image mean {image_q.mean():.3f} (min {image_q.min():.1f}); "
              f"control, queries shifted by one: {shuffled.mean():.3f}")
        if "int8" in name:  # activations are scaled per batch: the same photo in another batch moves a little
            alone = np.concatenate([engine.encode_pixels(all_pixels[i : i + 1]) for i in range(16)])
            print(f"    the first 16 photos alone vs in batches of {args.batch}: min cosine "
                  f"{(alone * img[:16]).sum(1).min():.4f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
