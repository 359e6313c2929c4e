"""Residual heads over a frozen model's unit vectors, and how they are stored.

A head maps ``v`` to ``normalize(v + W2 · gelu(W1 · v + b1))``. ``W2`` starts
at zero, so an untrained head is the identity and tuning starts from the
base space (and a head that learned nothing changes nothing). Applying one
is plain numpy: searching a tuned library needs no torch.

Heads are saved as one safetensors file named by their digest, with a JSON
sidecar (base identity, creation time, sample sizes, the guard's figures).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = 1  # the sidecar's "format": bump when the file layout changes
TUNED_MARK = "+tuned-"  # tuned identity = base key + TUNED_MARK + digest
_CHUNK = 4096  # rows per matrix product: bounds the hidden activations' memory


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form: what training uses too (``approximate="tanh"``), so both agree to float rounding."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Head:
    """One residual head: ``w1`` hidden x dim, ``b1`` hidden, ``w2`` dim x hidden (float32)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.w1.shape[1])

    @staticmethod
    def identity(dim: int, hidden: int, seed: int = 0) -> Head:
        rng = np.random.default_rng(seed)
        w1 = (rng.normal(size=(hidden, dim)) / np.sqrt(dim)).astype(np.float32)
        return Head(w1, np.zeros(hidden, np.float32), np.zeros((dim, hidden), np.float32))

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Unit vectors in, unit vectors out (float32), any number of rows."""
        x = np.asarray(vectors, np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"head expects N x {self.dim} vectors, got {x.shape}")
        out = np.empty_like(x)
        for start in range(0, len(x), _CHUNK):
            part = x[start : start + _CHUNK]
            out[start : start + _CHUNK] = normalize(part + gelu(part @ self.w1.T + self.b1) @ self.w2.T)
        return out


@dataclass(frozen=True)
class Heads:
    """The image head and the text head tuned together for one base embedding space."""

    image: Head
    text: Head
    base_key: str

    @property
    def digest(self) -> str:
        """Names the heads: a change of any weight (or of the base space) is a new identity."""
        h = hashlib.blake2b(self.base_key.encode(), digest_size=6)
        for name, array in sorted(self.tensors().items()):
            h.update(name.encode())
            h.update(np.ascontiguousarray(array, "<f4").tobytes())
        return h.hexdigest()

    @property
    def tuned_key(self) -> str:
        return tuned_key(self.base_key, self.digest)

    def tensors(self) -> dict[str, np.ndarray]:
        return {f"{side}.{part}": getattr(getattr(self, side), part)
                for side in ("image", "text") for part in ("w1", "b1", "w2")}


def tuned_key(base_key: str, digest: str) -> str:
    return f"{base_key}{TUNED_MARK}{digest}"


def is_tuned_key(key: str) -> bool:
    return TUNED_MARK in key


def save_heads(heads: Heads, folder: Path, sidecar: dict) -> Path:
    """Write ``<digest>.safetensors`` and ``<digest>.json`` in ``folder`` (atomically); returns the weights path."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{heads.digest}.safetensors"
    tmp = path.with_suffix(".tmp")
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in heads.tensors().items()}, str(tmp),
              metadata={"base_key": heads.base_key, "format": str(FORMAT)})
    os.replace(tmp, path)
    meta = {"format": FORMAT, "base_key": heads.base_key, "tuned_key": heads.tuned_key, "digest": heads.digest,
            **sidecar}
    side = path.with_suffix(".json")
    side.with_suffix(".json.tmp").write_text(json.dumps(meta, indent=2, default=str))
    os.replace(side.with_suffix(".json.tmp"), side)
    return path


def load_heads(path: Path) -> Heads:
    """The heads saved at ``path``; raises ``OSError``/``ValueError`` when missing or damaged."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            base_key = (f.metadata() or {}).get("base_key")
            tensors = {name: f.get_tensor(name).astype(np.float32) for name in f.keys()}  # noqa: SIM118 - not a dict
    except SafetensorError as exc:
        if not path.exists():
            raise FileNotFoundError(path) from None
        raise ValueError(f"{path} is not a heads file ({exc})") from None
    if not base_key:
        raise ValueError(f"{path} names no base model")
    try:
        image, text = (Head(tensors[f"{s}.w1"], tensors[f"{s}.b1"], tensors[f"{s}.w2"]) for s in ("image", "text"))
    except KeyError as exc:
        raise ValueError(f"{path} lacks {exc}") from None
    for side, head in (("image", image), ("text", text)):
        hidden, dim = head.w1.shape if head.w1.ndim == 2 else (-1, -1)
        if head.b1.shape != (hidden,) or head.w2.shape != (dim, hidden) or dim != image.dim:
            raise ValueError(f"{path}: the {side} head's shapes do not fit together "
                             f"({head.w1.shape}, {head.b1.shape}, {head.w2.shape})")
    return Heads(image, text, base_key)


def read_sidecar(path: Path) -> dict:
    try:
        return json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
