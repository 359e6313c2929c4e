"""Choosing a caption backend: CoCa (reads the photo) or the embedding decoder (reads the vector)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clipdesk.captions.base import BACKENDS, DEFAULT_MAX_LEN, PhotoItem
from clipdesk.errors import ModelNotAvailable, QueryError


class DecoderBackend:
    """The text-only decoder behind the ``Captioner`` interface."""

    def __init__(self, decoder, method: str = "beam", max_len: int = DEFAULT_MAX_LEN) -> None:
        self.decoder = decoder
        self.method, self.max_len = method, max_len

    @property
    def model_key(self) -> str:
        # Its weights and the CLIP space they read: retraining means new captions.
        return f"{self.decoder.version}@{self.decoder.model_key}"

    def candidates(self, items: Sequence[PhotoItem], n: int) -> list[list[str]]:
        if not items:
            return []
        vectors = np.stack([it.embedding for it in items])
        return self.decoder.caption_embeddings(vectors, n=n, method=self.method, max_len=self.max_len)


def load_decoder(library_root: Path, engine, device: str = "auto"):
    """The decoder trained for ``engine``'s model, or a message saying how to make one."""
    from clipdesk.captions.decoder import EmbeddingDecoderCaptioner, checkpoint_path

    path = checkpoint_path(Path(library_root), engine.key)
    if not path.is_file():
        raise ModelNotAvailable(
            f"No caption decoder for model '{engine.spec.name}': looked for {path}. "
            "Train one from the shipped caption text (minutes on a CPU): clipdesk captions train")
    return EmbeddingDecoderCaptioner.load(path, device=device)


def make_captioner(backend: str, library_root: Path, engine, *, caption_model: str | None = None,
                   device: str = "auto", method: str = "beam", max_len: int = DEFAULT_MAX_LEN,
                   batch_size: int = 8, precision: str = "auto"):
    """A ``Captioner`` for ``backend`` (``coca`` or ``decoder``); models load on first use."""
    if importlib.util.find_spec("torch") is None:  # the packaged app searches with ONNX Runtime alone
        raise ModelNotAvailable("Captioning needs PyTorch, which this build does not include: caption from a "
                                "Python install of clipdesk (scripts/bootstrap.sh), on the same library.")
    if backend == "coca":
        from clipdesk.captions.coca import CocaCaptioner, resolve_caption_model

        return CocaCaptioner(resolve_caption_model(caption_model), device=device, batch_size=batch_size,
                             method=method, max_len=max_len, precision=precision)
    if backend == "decoder":
        return DecoderBackend(load_decoder(library_root, engine, device), method=method, max_len=max_len)
    raise QueryError(f"Unknown caption backend '{backend}': use {' or '.join(BACKENDS)}.")
