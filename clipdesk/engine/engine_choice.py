"""Which engine embeds faster on this CPU: measured once by ``clipdesk models bench-engines``, then followed.

torch and ONNX Runtime at fp32 compute the same vectors (one key; tests/core/test_onnx_engine.py
checks it on real photos), so choosing between them is about speed alone, and which one wins
depends on the machine: on one 2-core EPYC ONNX Runtime was 1.36x faster for ViT-B-32 images
under load, on another run slower. So nothing is guessed: the measurement is recorded per CPU
model and architecture in ``<models>/engine_choice.json`` and ``backend.make_engine`` follows it
for fp32 on the CPU when both engines are installed. ``CLIPDESK_ENGINE`` still overrides.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from clipdesk.paths import models_dir

CHOICE_FILE = "engine_choice.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def _records() -> dict:
    try:
        return json.loads((models_dir() / CHOICE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def recorded(arch: str) -> str | None:
    """``torch`` or ``onnx`` if ``bench-engines`` measured ``arch`` on this CPU model, else None."""
    entry = _records().get(cpu_model(), {}).get(arch)
    engine = entry.get("engine") if isinstance(entry, dict) else None
    return engine if engine in ("torch", "onnx") else None


def record(arch: str, rates: dict[str, float]) -> str:
    """Keep ``rates`` (images/s per engine) for ``arch`` on this CPU model; returns the faster engine."""
    engine = max(rates, key=rates.get)
    records = _records()
    records.setdefault(cpu_model(), {})[arch] = {
        "engine": engine, "images_per_s": {k: round(v, 2) for k, v in rates.items()},
        "measured": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    target = models_dir() / CHOICE_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=CHOICE_FILE, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(records, fh, indent=1)
    os.replace(tmp, target)
    return engine


def measure(arch: str, batch: int = 32, rounds: int = 3,
            on_round: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Images/s of torch and ONNX Runtime at fp32 on the CPU, ``arch`` with random weights, alternating rounds.

    Speed does not depend on the weights, so nothing is downloaded. Needs torch and open_clip (to export).
    """
    import numpy as np
    from safetensors.torch import save_file

    from clipdesk.engine.clip import ClipEngine
    from clipdesk.engine.onnx_engine import OnnxEngine
    from clipdesk.engine.onnx_export import export_arch
    from clipdesk.engine.registry import ModelSpec

    with tempfile.TemporaryDirectory() as tmp:
        torch_engine = ClipEngine(ModelSpec("bench", arch, random_init=True), "cpu", batch, precision="fp32")
        weights = Path(tmp) / "w.safetensors"
        save_file({k: v.contiguous() for k, v in torch_engine.model.state_dict().items()}, str(weights))
        export_arch(arch, Path(tmp) / "onnx")
        saved = os.environ.get("CLIPDESK_ONNX_PATH")
        os.environ["CLIPDESK_ONNX_PATH"] = str(Path(tmp) / "onnx")
        try:
            onnx_engine = OnnxEngine(ModelSpec("bench", arch, checkpoint=str(weights)), "cpu", batch)
            engines = {"torch": torch_engine, "onnx": onnx_engine}
            size = onnx_engine.input_spec().size
            pixels = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
            times: dict[str, list[float]] = {name: [] for name in engines}
            for engine in engines.values():
                engine.encode_pixels(pixels[:2])  # warm-up
            for i in range(rounds):
                for name, engine in engines.items():
                    start = time.perf_counter()
                    engine.encode_pixels(pixels)
                    times[name].append(time.perf_counter() - start)
                if on_round:
                    on_round(i + 1, rounds)
        finally:
            if saved is None:
                os.environ.pop("CLIPDESK_ONNX_PATH", None)
            else:
                os.environ["CLIPDESK_ONNX_PATH"] = saved
    return {name: batch / float(np.median(t)) for name, t in times.items()}
