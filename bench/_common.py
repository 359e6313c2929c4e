"""Shared helpers for the benchmarks: machine facts, test photos, a random model.

The benchmarks never touch the user's library or model cache, never write
inside the repository (except under ``bench/out/`` when asked) and never
download anything.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random-init models only: never wait for the network

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def shared_data() -> Path:
    env = os.environ.get("CLIPDESK_SHARED_DATA")
    if env:
        return Path(env)
    for parent in REPO.parents:
        candidate = parent / "shared" / "data"
        if (candidate / "PROVENANCE.md").is_file():
            return candidate
    raise SystemExit("shared/data not found; set CLIPDESK_SHARED_DATA")


def coco_images() -> list[Path]:
    return sorted((shared_data() / "coco_mini" / "images").glob("*.jpg"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(torch: bool = False) -> str:
    import numpy
    import PIL

    parts = [
        f"{os.cpu_count()} cores ({cpu_model()})",
        f"Python {platform.python_version()}",
        f"numpy {numpy.__version__}",
        f"Pillow {PIL.__version__}",
    ]
    if torch:
        import open_clip
        import torch as _torch

        parts += [f"torch {_torch.__version__} ({_torch.get_num_threads()} threads)", f"open_clip {open_clip.__version__}"]
    load = os.getloadavg()
    parts.append(f"load avg {load[0]:.2f}/{load[1]:.2f}")
    parts.append(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return "machine: " + "; ".join(parts)


def random_engine(arch: str = "ViT-B-32", batch_size: int = 32, device: str = "cpu", precision: str = "fp32"):
    """A real-size open_clip model with random weights: same speed, no download."""
    from clipdesk.engine.clip import ClipEngine
    from clipdesk.engine.registry import ModelSpec

    os.environ.setdefault("CLIPDESK_MODELS", str(Path(tempfile.gettempdir()) / "clipdesk-bench-models"))
    spec = ModelSpec(f"{arch.lower()}-random", arch, random_init=True, description="benchmark only")
    engine = ClipEngine(spec, device=device, batch_size=batch_size, precision=precision)
    engine.model  # noqa: B018 - load now, outside any timing
    return engine


# -- 12-megapixel test JPEGs ---------------------------------------------------

MP12_SIZE = (4000, 3000)
MP12_VERSION = "v2"  # bump when the generator changes, so stale caches are not reused


def default_12mp_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"clipdesk-bench-12mp-{MP12_VERSION}"


def make_12mp_set(n: int, dest: Path | None = None, quiet: bool = False) -> list[Path]:
    """``n`` photo-like 4000x3000 JPEGs (quality 90), made once and cached.

    Real COCO photos upscaled with bicubic interpolation, plus a fixed film
    grain (sigma 6) so the files carry camera-like high-frequency detail:
    a smooth upscale alone compresses too well and decodes unrealistically
    fast. A small EXIF block (make, model, date) is included.
    """
    import numpy as np
    from PIL import Image

    dest = dest or default_12mp_dir()
    dest.mkdir(parents=True, exist_ok=True)
    paths = [dest / f"mp12_{i:04d}.jpg" for i in range(n)]
    todo = [p for p in paths if not p.is_file()]
    if not todo:
        return paths
    sources = coco_images()
    rng = np.random.default_rng(0)
    grain = rng.normal(0.0, 6.0, size=(MP12_SIZE[1], MP12_SIZE[0], 3)).astype(np.float32)
    t0 = time.perf_counter()
    for path in todo:
        i = int(path.stem.split("_")[1])
        with Image.open(sources[i % len(sources)]) as src:
            big = src.convert("RGB").resize(MP12_SIZE, Image.Resampling.BICUBIC)
        shift = (i * 7919) % MP12_SIZE[0]
        arr = np.asarray(big, dtype=np.float32) + np.roll(grain, shift, axis=1)
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        exif = Image.Exif()
        exif[0x010F] = "BenchCam"
        exif[0x0110] = "Model 12"
        exif[0x0132] = "2024:05:01 12:00:00"
        tmp = path.with_suffix(".tmp")
        im.save(tmp, "JPEG", quality=90, exif=exif)
        os.replace(tmp, path)
    if not quiet:
        mb = statistics.mean(p.stat().st_size for p in paths) / 1e6
        print(f"made {len(todo)} 12 MP JPEGs in {dest} ({time.perf_counter() - t0:.0f} s; mean {mb:.1f} MB)")
    return paths


def mean_mb(paths: list[Path]) -> float:
    return statistics.mean(p.stat().st_size for p in paths) / 1e6


def pct(values: list[float], q: float) -> float:
    """Percentile ``q`` (0-100) by linear interpolation."""
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


# -- telling our own CPU use from other processes' ------------------------------


def _busy_jiffies() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / hz, sum(fields[:8]) / hz


def _own_cpu() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped children: the decode workers
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class CpuMeter:
    """Measures, over a ``with`` block, how many cores other processes kept busy.

    Our own process and its reaped children are subtracted from the machine's
    busy time. ``other`` is in cores (0.0 = a quiet machine, 1.0 = one core
    taken by someone else for the whole block).
    """

    def __enter__(self) -> CpuMeter:
        self._busy0, _ = _busy_jiffies()
        self._own0 = _own_cpu()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        busy1, _ = _busy_jiffies()
        wall = max(time.perf_counter() - self._t0, 1e-9)
        self.own = (_own_cpu() - self._own0) / wall
        self.other = max(0.0, (busy1 - self._busy0) / wall - self.own)


def wait_quiet(threshold: float = 0.25, max_wait: float = 60.0, quiet: bool = False) -> float:
    """Wait (at most ``max_wait`` s) until other processes use < ``threshold`` cores over 1 s.

    Returns the last measured foreign load. Benchmarks call this before each
    timed block so that a test run of another process does not land in it.
    """
    deadline = time.monotonic() + max_wait
    while True:
        with CpuMeter() as m:
            time.sleep(1.0)
        if m.other < threshold or time.monotonic() > deadline:
            if not quiet and m.other >= threshold:
                print(f"  (machine still busy: {m.other:.2f} cores used by other processes; measuring anyway)")
            return m.other
        time.sleep(2.0)


def run_sizes(doc: str, run, sizes: str, add_arguments=None) -> None:
    """The command line of a benchmark run once per library size: ``--sizes``, ``--wait-quiet``, ``--tmp`` and
    the benchmark's own options (``add_arguments(parser)``); ``run(n, args, tmp)`` per size, in one temp folder."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=sizes, help=f"comma list of library sizes (default {sizes})")
    ap.add_argument("--wait-quiet", type=float, default=0.25, metavar="CORES")
    ap.add_argument("--tmp", type=Path, default=None, help="where the temporary libraries go")
    if add_arguments is not None:
        add_arguments(ap)
    args = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            run(n, args, Path(tmp))
