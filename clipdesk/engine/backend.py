"""Which engine runs a model: open_clip on torch, or ONNX Runtime.

``CLIPDESK_ENGINE=torch|onnx`` forces one; by default torch is used when it
is installed (development installs, training and tuning), ONNX Runtime
otherwise (the packaged app, which ships without torch to stay small).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

from clipdesk.engine.registry import ModelSpec


def backend_name() -> str:
    chosen = os.environ.get("CLIPDESK_ENGINE", "auto").strip().lower()
    if chosen in ("torch", "onnx"):
        return chosen
    has_torch = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("open_clip") is not None
    return "torch" if has_torch else "onnx"


def make_engine(spec: ModelSpec, device: str = "auto", batch_size: int = 32,
                on_download: Callable[[int, int], None] | None = None, precision: str = "auto"):
    """A ``ClipEngine`` or an ``OnnxEngine`` (same interface; the same key at fp32)."""
    if backend_name() == "onnx":
        from clipdesk.engine.onnx_engine import OnnxEngine

        return OnnxEngine(spec, device=device, batch_size=batch_size, on_download=on_download, precision=precision)
    from clipdesk.engine.clip import ClipEngine

    return ClipEngine(spec, device=device, batch_size=batch_size, on_download=on_download, precision=precision)
