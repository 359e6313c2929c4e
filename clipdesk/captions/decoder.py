"""The embedding-decoder caption backend: captions from stored CLIP vectors, no image read.

Use::

    path = checkpoint_path(library_dir, engine.key)   # written by clipdesk.captions.train.train
    captioner = EmbeddingDecoderCaptioner.load(path)
    captioner.caption_embeddings(image_vectors, n=5)  # n candidates per row, best first

The decoder only fits the CLIP model it was trained for (``model_key``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipdesk.captions import decoding
from clipdesk.captions.decoder_model import checkpoint_path, load_checkpoint, project_to_memory
from clipdesk.captions.textdata import Vocab
from clipdesk.engine.clip import pick_device

__all__ = ["EmbeddingDecoderCaptioner", "checkpoint_path"]

METHODS = ("beam", "greedy", "nucleus")


class EmbeddingDecoderCaptioner:
    """A trained decoder on one device. ``model_key``: the CLIP model it reads; ``version``: its weights."""

    def __init__(self, model, vocab: Vocab, meta: dict, device: str = "cpu") -> None:
        self.model = model
        self.vocab = vocab
        self.meta = meta
        self.device = device
        self.model_key: str = meta["model_key"]
        digest = meta.get("weights_sha256") or "unsaved"
        self.version: str = f"decoder-v{meta.get('format', 0)}-{digest[:12]}"

    @classmethod
    def load(cls, path: Path, device: str = "auto") -> EmbeddingDecoderCaptioner:
        """Load a checkpoint; on CUDA the weights run in half precision."""
        device = pick_device(device)
        model, vocab, meta = load_checkpoint(Path(path), device)
        if device.startswith("cuda"):
            model.half()
            model.emb_mean.data = model.emb_mean.float()  # standardise in fp32, then cast
            model.emb_std.data = model.emb_std.float()
        return cls(model, vocab, meta, device)

    @property
    def most_frequent_caption(self) -> str:
        """The trivial baseline: the caption seen most often in training."""
        return self.meta.get("most_frequent_caption", "")

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """Close the modality gap: express each vector as a mix of training-caption vectors."""
        import torch

        x = torch.from_numpy(np.asarray(embeddings, np.float32)).to(self.device)
        memory = self.model.memory
        if len(memory) == 0:
            return np.asarray(embeddings, np.float32)
        return project_to_memory(x, memory, self.model.cfg.memory_temperature).cpu().numpy()

    def caption_embeddings(self, embeddings: np.ndarray, n: int = 5, method: str = "beam", max_len: int = 24,
                           *, project: bool = True, batch_size: int = 64, seed: int = 0) -> list[list[str]]:
        """Up to ``n`` distinct captions per row of ``embeddings`` (unit CLIP vectors), best first.

        ``method``: ``beam`` (width ``max(n, 3)``), ``greedy`` (one caption per row) or
        ``nucleus`` (top-p 0.9 sampling, ``2n`` draws ranked by likelihood; ``seed`` makes
        it repeatable). ``max_len`` caps the words per caption. ``project=False`` decodes
        the vectors as they are: right for *text* embeddings, wrong for image ones.
        """
        import torch

        if method not in METHODS:
            raise ValueError(f"unknown decoding method {method!r}; use one of {', '.join(METHODS)}")
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, self.model.cfg.embed_dim)
        max_words = max(1, min(max_len, self.model.cfg.max_words))
        generator = torch.Generator().manual_seed(seed)
        out: list[list[str]] = []
        for start in range(0, len(embeddings), batch_size):
            chunk = embeddings[start:start + batch_size]
            if project:
                chunk = self.project(chunk)
            emb = torch.from_numpy(np.ascontiguousarray(chunk)).to(self.device)
            with torch.inference_mode():
                prefix = self.model.prefix_states(emb)
            if method == "greedy":
                ranked = decoding.greedy(self.model, prefix, max_words)
            elif method == "beam":
                ranked = decoding.beam(self.model, prefix, max_words, width=max(n, 3))
            else:
                ranked = decoding.nucleus(self.model, prefix, max_words, samples=2 * n, generator=generator)
            out.extend(self._texts(r, n) for r in ranked)
        return out

    def _texts(self, ranked: list[tuple[float, list[int]]], n: int) -> list[str]:
        texts: list[str] = []
        for _, ids in ranked:
            text = self.vocab.decode(ids)
            if text and text not in texts:
                texts.append(text)
            if len(texts) == n:
                break
        return [t[:1].upper() + t[1:] for t in texts]
