"""Which engine runs a model: open_clip on torch, or ONNX Runtime.

``CLIPDESK_ENGINE=torch|onnx`` forces one; by default torch is used when it
is installed (development installs, training and tuning), ONNX Runtime
otherwise (the packaged app, which ships without torch to stay small); see
``base.backend_name``. Where both are installed, fp32 on the CPU follows what
``clipdesk models bench-engines`` measured on this CPU (``engine_choice``).
This is the top of the engine package: it imports both
engines (lazily), and nothing in the package imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from clipdesk.engine.base import backend_name
from clipdesk.engine.registry import ModelSpec


def make_engine(spec: ModelSpec, device: str = "auto", batch_size: int = 32,
                on_download: Callable[[int, int], None] | None = None, precision: str = "auto"):
    """A ``ClipEngine`` or an ``OnnxEngine``: both are ``base.Encoder`` (the same key at fp32)."""
    if backend_name() == "onnx" or _measured_faster_on_onnx(spec, device, precision):
        from clipdesk.engine.onnx_engine import OnnxEngine

        return OnnxEngine(spec, device=device, batch_size=batch_size, on_download=on_download, precision=precision)
    from clipdesk.engine.clip import ClipEngine

    return ClipEngine(spec, device=device, batch_size=batch_size, on_download=on_download, precision=precision)


def _measured_faster_on_onnx(spec: ModelSpec, device: str, precision: str) -> bool:
    """fp32 on the CPU, no ``CLIPDESK_ENGINE``, ONNX measured faster here, and a graph for ``spec`` on disk."""
    if os.environ.get("CLIPDESK_ENGINE", "auto").strip().lower() != "auto" or precision not in ("auto", "fp32"):
        return False
    from clipdesk.engine.engine_choice import recorded

    if recorded(spec.arch) != "onnx":
        return False
    from clipdesk.engine.clip import pick_device
    from clipdesk.engine.onnx_files import find_graph_dir

    return pick_device(device) == "cpu" and find_graph_dir(spec) is not None
