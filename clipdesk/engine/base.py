"""What every engine offers: the input it wants, the protocol callers type against, which engine runs.

Kept free of the engine modules so that both engines (``clip.ClipEngine`` on
torch, ``onnx_engine.OnnxEngine`` on ONNX Runtime) and everything that takes
either (search, labels, captions, the indexer) can import it without a cycle.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class InputSpec:
    """What decode workers must produce for this model."""

    size: int
    squash: bool  # resize the whole frame (SigLIP) instead of centre-cropping


class Encoder(Protocol):
    """A loaded CLIP model, whichever engine runs it: unit vectors in the space named by ``key``."""

    @property
    def key(self) -> str:
        """The embedding space (model and precision): same key, comparable vectors."""

    @property
    def dim(self) -> int: ...

    @property
    def precision(self) -> str:
        """fp32, fp16 or bf16: what the vectors are computed at."""

    batch_size: int  # images per forward pass (indexing decodes this many ahead)

    def input_spec(self) -> InputSpec: ...
    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...
    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray: ...
    def encode_files(self, paths: Sequence[str | os.PathLike[str]]) -> np.ndarray: ...


def backend_name() -> str:
    """``torch`` or ``onnx``: ``CLIPDESK_ENGINE`` if set, else torch where it is installed.

    The packaged app ships without torch, so it runs ONNX Runtime.
    """
    chosen = os.environ.get("CLIPDESK_ENGINE", "auto").strip().lower()
    if chosen in ("torch", "onnx"):
        return chosen
    has_torch = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("open_clip") is not None
    return "torch" if has_torch else "onnx"


def torch_available() -> bool:
    return backend_name() == "torch"


def onnx_providers(requested: str = "auto") -> tuple[list[str], str, str]:
    """(providers, device, why) for ONNX Runtime: CUDA when this build has it and it was not refused."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested in ("auto", "cuda") or requested.startswith("cuda:"):
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda", "ONNX Runtime CUDA"
        why = "this ONNX Runtime build has no CUDA support (onnxruntime-gpu adds it)"
    else:
        why = f"device set to {requested}"
    return ["CPUExecutionProvider"], "cpu", why
