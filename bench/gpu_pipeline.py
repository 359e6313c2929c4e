"""GPU pipeline: 12 MP JPEGs to vectors on one device (read -> decode_jpeg there -> resize/normalise -> model).

One call, a few minutes on a lent GPU (random weights: no download is
possible there). Prints, for ``--arch`` at the device's default precision
(fp16 on CUDA):

- each stage alone, photos/s: file read + header (thread pool, into pinned
  memory), decode (nvJPEG, batched), preprocess (crop/resize/normalise as the
  CPU path does them), model; the slowest is named the bottleneck;
- end to end, photos/s: ``DevicePreprocessor.batches`` (reads one batch ahead)
  feeding the model, vectors back on the host;
- damaged JPEGs (truncated, garbage in the scan): reported as the CPU path
  reports them, or MISMATCH (a device decoder that grey-fills what Pillow refuses);
- agreement with the CPU path (``read_photo`` + ``encode_pixels``) on real
  photos as stored (4:4:4), re-encoded 4:2:0 and 4:2:2, and the 12 MP ones,
  same engine: cosine min/mean, how many input bytes differ, and a control
  (random +-1 on the CPU path's bytes) showing how much this model moves for
  a change of that size. Random weights make this a mechanics check.

The 12 MP set is ``--unique`` distinct files (bench/_common.make_12mp_set,
single-threaded, ~0.5 s each) cycled to ``--photos``: all from the page
cache, as on any second run.

    .venv/bin/python bench/gpu_pipeline.py                           # CUDA, ViT-B-32 fp16, 2048 photos
    .venv/bin/python bench/gpu_pipeline.py --reduced                 # the whole path on CPU (~1 min on 2 cores)
    .venv/bin/python bench/gpu_pipeline.py --reduced --arch clipdesk-tiny-random --photos 2   # ~10 s: the test
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from _common import coco_images, machine_line, make_12mp_set, random_engine


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def stages(pre, engine, paths: list[str], batch: int, sync) -> dict[str, float]:
    """Seconds each stage takes alone over ``paths``, batch by batch (synchronised after each)."""
    import torch

    from clipdesk.engine.gpu_decode import JpegBytes, encode

    took = dict.fromkeys(("read", "decode", "preprocess", "model"), 0.0)
    for chunk in _chunks(paths, batch):
        t0 = time.perf_counter()
        read = list(pre._readers.map(pre.read, chunk))  # noqa: SLF001 - the pool the pipeline reads with
        t1 = time.perf_counter()
        squares = []
        for part in pre.parts([r for r in read if isinstance(r, JpegBytes)]):  # as the pipeline bounds memory
            t = time.perf_counter()
            decoded, refused = pre.decode(part)
            sync()
            took["decode"] += time.perf_counter() - t
            t = time.perf_counter()
            refused_ids = {id(j) for j in refused}
            squares.append(pre.squares([j for j in part if id(j) not in refused_ids], decoded))
            sync()
            took["preprocess"] += time.perf_counter() - t
            del decoded
        t2 = time.perf_counter()
        x = pre.normalise(torch.cat(squares))
        sync()
        t3 = time.perf_counter()
        took["preprocess"] += t3 - t2
        encode(engine, x)
        t4 = time.perf_counter()  # encode ends with the vectors on the host: synchronised
        took["read"] += t1 - t0
        took["model"] += t4 - t3
        del x
    return took


def end_to_end(pre, engine, paths: list[str], batch: int) -> tuple[int, float, int]:
    from clipdesk.engine.gpu_decode import encode

    done = errors = 0
    start = time.perf_counter()
    for b in pre.batches(paths, batch):
        done += len(encode(engine, b.pixels))
        errors += len(b.errors)
    return done, time.perf_counter() - start, errors


def agreement(pre, engine, n: int, big: list[str]) -> float:
    """Device path vs CPU path, same engine, on ``n`` real photos as they are (4:4:4), re-encoded 4:2:0 and 4:2:2,
    and ``big`` (12 MP, 4:2:0); returns the minimum cosine over all."""
    import tempfile
    from pathlib import Path

    from PIL import Image

    coco = [str(p) for p in coco_images()[:n]]
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"COCO as stored (4:4:4)": coco}
        # What cameras write: chroma at half resolution, which a reduced decode treats apart. 4:2:2 at a size
        # the CPU path decodes at 1/4, as many cameras' own JPEGs are.
        for sub, label, size in ((2, "4:2:0", None), (1, "4:2:2", (1600, 1200))):
            sets[f"COCO re-encoded {label}" + (f" at {size[0]}x{size[1]}" if size else "")] = made = []
            for p in coco:
                q = str(Path(tmp) / f"{label.replace(':', '')}_{Path(p).name}")
                im = Image.open(p).convert("RGB")
                (im.resize(size, Image.Resampling.BICUBIC) if size else im).save(q, quality=90, subsampling=sub)
                made.append(q)
        sets["12 MP 4:2:0"] = big
        print(f"agreement with the CPU path ({engine.spec.arch} random init at {engine.precision}, input "
              f"{engine.input_spec().size}); control: random +-1 on 40% of the CPU path's bytes")
        worst = min(_agree(pre, engine, name, paths) for name, paths in sets.items() if paths)
    print(f"  shared key allowed (>= 0.9999 on every set): {'yes' if worst >= 0.9999 else 'no'} "
          "(random weights: proof only for these; real weights need their own run)")
    return worst


def _agree(pre, engine, name: str, paths: list[str]) -> float:
    import numpy as np

    from clipdesk.engine.gpu_decode import JpegBytes, encode
    from clipdesk.imageio import read_photo

    size = engine.input_spec().size
    ref_pixels = np.stack([read_photo(p, size, pre.spec.squash).pixels for p in paths])
    ref = engine.encode_pixels(ref_pixels)
    batch = pre.prepare(paths)
    cos = (encode(engine, batch.pixels) * ref).sum(1)
    line = (f"  {name}, {len(paths)} photos: cosine min {cos.min():.6f}, mean {cos.mean():.6f}; routes "
            f"{batch.routes.count('device')} device, {batch.routes.count('cpu')} cpu, {len(batch.errors)} errors")
    read = [pre.read(p) for p in paths]
    jpegs = [r for r in read if isinstance(r, JpegBytes)]
    decoded, refused = pre.decode(jpegs)
    if jpegs and not refused:
        squares = pre.squares(jpegs, decoded).permute(0, 2, 3, 1).cpu().numpy()
        diff = np.abs(squares - ref_pixels[[paths.index(j.path) for j in jpegs]].astype(np.float64))
        line += f"; bytes: {100 * (diff > 0).mean():.1f}% differ, mean |diff| {diff.mean():.3f}, max {diff.max():.0f}"
    rng = np.random.default_rng(0)
    noise = rng.integers(-1, 2, ref_pixels.shape) * (rng.random(ref_pixels.shape) < 0.6)
    control = (engine.encode_pixels(np.clip(ref_pixels + noise, 0, 255).astype(np.uint8)) * ref).sum(1)
    sims = ref @ ref.T
    print(line + f"; control min {control.min():.6f}; different photos mean {sims[~np.eye(len(ref), dtype=bool)].mean():.3f}")
    return float(cos.min())


def broken_files(pre) -> bool:
    """Damaged JPEGs the device decoder sees must be reported as the CPU path reports them."""
    import tempfile
    from pathlib import Path

    from clipdesk.imageio import read_many

    data = coco_images()[0].read_bytes()
    middle = len(data) // 2
    damaged = {
        "truncated.jpg": data[:middle],
        "truncated_with_eoi.jpg": data[:middle] + b"\xff\xd9",
        "garbage_in_scan.jpg": data[:middle] + bytes(range(256)) * 8 + data[middle + 2048 :],
    }
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in damaged.items():
            path = Path(tmp) / name
            path.write_bytes(content)
            cpu_err = read_many([str(path)], pre.spec.size, pre.spec.squash)[0][2]
            batch = pre.prepare([str(path)])
            ours = batch.errors[0][1] if batch.errors else None
            ok = ok and ours == cpu_err
            print(f"damaged {name}: CPU path: {cpu_err or 'embedded'}; this path: "
                  f"{ours or 'embedded via ' + batch.routes[0]}{'' if ours == cpu_err else '  MISMATCH'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--arch", default="ViT-B-32", help="open_clip architecture, random weights (default ViT-B-32)")
    p.add_argument("--precision", default="auto", help="auto: fp16 on CUDA, fp32 elsewhere")
    p.add_argument("--photos", type=int, default=2048, help="12 MP photos end to end (default 2048)")
    p.add_argument("--unique", type=int, default=32, help="distinct 12 MP files, cycled (default 32)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--stage-photos", type=int, default=1024, help="photos the per-stage timings use")
    p.add_argument("--read-threads", type=int, default=8)
    p.add_argument("--agree", type=int, default=None, help="real photos per agreement set (default 64 on CUDA, "
                   "8 elsewhere; 0: skip)")
    p.add_argument("--reduced", action="store_true", help="CPU, 8 photos, batch 4: the whole path in seconds")
    args = p.parse_args(argv)
    if args.agree is None:
        args.agree = 64 if args.device.startswith("cuda") and not args.reduced else 8
    if args.reduced:
        args.device, args.photos, args.unique, args.batch = "cpu", min(args.photos, 8), 8, min(args.batch, 4)
        args.stage_photos, args.read_threads, args.agree = 8, 2, min(args.agree, 4)

    import torch

    from clipdesk.engine.gpu_decode import DevicePreprocessor

    print(machine_line(torch=True))
    cuda = args.device.startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            print("FAIL: CUDA is not available to this PyTorch", torch.__version__, torch.version.cuda)
            return 2
        print("GPU:", torch.cuda.get_device_name(0), "CUDA", torch.version.cuda)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    unique = make_12mp_set(min(args.unique, args.photos))
    paths = [str(unique[i % len(unique)]) for i in range(args.photos)]
    engine = random_engine(args.arch, batch_size=args.batch, device=args.device, precision=args.precision)
    print(f"model: {engine.spec.arch} random init on {engine.device} at {engine.precision}, input "
          f"{engine.input_spec().size}; batch {args.batch}; {args.read_threads} read threads")
    with DevicePreprocessor.for_engine(engine, read_threads=args.read_threads) as pre:
        if cuda:  # warm-up: nvJPEG, kernels, the resize geometry
            end_to_end(pre, engine, paths[: min(len(paths), args.batch)], args.batch)
            torch.cuda.reset_peak_memory_stats()
        sample = paths[: args.stage_photos]
        took = stages(pre, engine, sample, args.batch, sync)
        rates = {name: len(sample) / max(dt, 1e-9) for name, dt in took.items()}
        print("stages alone, photos/s: " + ", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items()))
        slowest = min(rates, key=rates.get)
        serial = len(sample) / (took["decode"] + took["preprocess"] + took["model"])
        print(f"bottleneck: {slowest} ({rates[slowest]:,.0f} photos/s); decode + preprocess + model run one after "
              f"another on one stream: {serial:,.0f} photos/s at most, reading overlaps them")
        done, secs, errors = end_to_end(pre, engine, paths, args.batch)
        print(f"end to end: {done} photos in {secs:.2f} s = {done / secs:,.0f} photos/s "
              f"(model only: {rates['model']:,.0f} photos/s), {errors} errors")
        if cuda:
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB allocated")
        ok = done == len(paths) and errors == 0
        ok = broken_files(pre) and ok
        if args.agree:
            agreement(pre, engine, args.agree, [str(u) for u in unique[: args.agree]])
    print("OK" if ok else "FAIL: not every photo was embedded")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - a one-call check: any error is a failure, shown in full
        traceback.print_exc()
        sys.exit(1)
