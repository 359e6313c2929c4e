"""The caption decoder network, the memory projection and checkpoint files.

A small decoder conditioned on one CLIP embedding (DeCap / MultiCapCLIP).
It is trained on caption *text* only (``clipdesk.captions.train``): the CLIP
text embedding of a caption is turned into a few prefix tokens and the decoder
learns to write the caption back. At run time an image embedding is first
projected onto a memory of training-caption text embeddings (a softmax-weighted
mix, as in DeCap), which moves it from the image side of CLIP's modality gap to
the text side the decoder knows.

A checkpoint is two files under ``<library>/models/captions/``: weights (plus
the memory and the embedding statistics) as safetensors, and a JSON sidecar with
the vocabulary, the configuration, the CLIP model key and the training stats.
Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from clipdesk.captions.textdata import Vocab
from clipdesk.errors import ClipdeskError

FORMAT_VERSION = 1
DEFAULT_TEMPERATURE = 0.01  # DeCap's projection temperature (logits x 100)


class CheckpointError(ClipdeskError):
    """A caption decoder checkpoint is missing, damaged or of another format."""


@dataclass(frozen=True)
class DecoderConfig:
    embed_dim: int  # the CLIP embedding size
    vocab_size: int
    width: int = 256
    layers: int = 3
    heads: int = 4
    prefix_len: int = 4
    max_words: int = 24
    dropout: float = 0.1
    memory_size: int = 0
    memory_temperature: float = DEFAULT_TEMPERATURE


def build_model(cfg: DecoderConfig):
    """The decoder as an ``nn.Module`` (torch is imported only when a model is needed)."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    class CaptionDecoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cfg = cfg
            w = cfg.width
            self.prefix = nn.Sequential(nn.Linear(cfg.embed_dim, w * cfg.prefix_len), nn.Tanh(),
                                        nn.Linear(w * cfg.prefix_len, w * cfg.prefix_len))
            self.tok = nn.Embedding(cfg.vocab_size, w)
            nn.init.normal_(self.tok.weight, std=0.02)  # it is also the output layer: N(0, 1) logits would explode
            self.pos = nn.Parameter(torch.randn(cfg.prefix_len + cfg.max_words + 2, w) * 0.02)
            layer = nn.TransformerEncoderLayer(w, cfg.heads, 4 * w, cfg.dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(w)
            # Standardising the input matters for random and anisotropic encoders, whose
            # caption vectors differ in a few directions only; the stats come from training.
            self.register_buffer("emb_mean", torch.zeros(cfg.embed_dim))
            self.register_buffer("emb_std", torch.ones(cfg.embed_dim))
            self.register_buffer("memory", torch.zeros(cfg.memory_size, cfg.embed_dim, dtype=torch.float16))

        def prefix_states(self, emb, noise: float = 0.0):
            z = (emb.to(self.emb_mean.dtype) - self.emb_mean) / self.emb_std
            if noise > 0:  # noise injection: the decoder must not rely on the exact text vector
                z = z + noise * torch.randn_like(z)
            return self.prefix(z.to(self.pos.dtype)).view(len(emb), self.cfg.prefix_len, -1)

        def hidden(self, prefix, tokens):
            x = torch.cat([prefix, self.tok(tokens)], dim=1)
            x = x + self.pos[: x.shape[1]]
            mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device, dtype=x.dtype)
            return self.norm(self.blocks(x, mask=mask, is_causal=True))

        def forward(self, emb, tokens, noise: float = 0.0):
            """Logits for each next token: position ``i`` of ``tokens`` predicts ``tokens[i + 1]``."""
            h = self.hidden(self.prefix_states(emb, noise), tokens)[:, self.cfg.prefix_len:]
            return F.linear(h, self.tok.weight)  # tied output layer: fewer parameters to learn

        def next_logprobs(self, prefix, tokens):
            h = self.hidden(prefix, tokens)[:, -1]
            return F.log_softmax(F.linear(h, self.tok.weight).float(), dim=-1)

    return CaptionDecoder()


def project_to_memory(embeddings, memory, temperature: float = DEFAULT_TEMPERATURE, *, return_weights: bool = False):
    """Softmax-weighted mix of memory rows most like each embedding, re-normalised (DeCap).

    ``embeddings`` (N x D) and ``memory`` (M x D) are torch tensors of unit vectors.
    The weights are non-negative and sum to one per row, so the result is a convex
    combination of caption text embeddings, scaled back to unit length.
    """
    import torch

    memory = memory.to(torch.float32)
    weights = torch.softmax(embeddings.to(torch.float32) @ memory.T / temperature, dim=-1)
    mixed = weights @ memory
    mixed = mixed / mixed.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (mixed, weights) if return_weights else mixed


# -- checkpoints -----------------------------------------------------------------


def checkpoint_path(library_dir: Path, model_key: str) -> Path:
    """Where the decoder for ``model_key`` lives (the ``.json`` sidecar sits beside it)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_key).strip("_")[:80]
    digest = hashlib.sha256(model_key.encode()).hexdigest()[:8]  # two keys that slug alike stay apart
    return Path(library_dir) / "models" / "captions" / f"decoder-v{FORMAT_VERSION}-{slug}-{digest}.safetensors"


def sidecar_path(path: Path) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(path: Path, model, vocab: Vocab, meta: dict) -> str:
    """Write weights and sidecar atomically (each via a temporary file); returns the weights digest."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp))
    digest = _sha256(tmp)
    side = {
        "format": FORMAT_VERSION,
        "config": asdict(model.cfg),
        "vocab": vocab.itos,
        "weights_sha256": digest,
        **meta,
    }
    side_tmp = sidecar_path(path).with_name(sidecar_path(path).name + ".tmp")
    side_tmp.write_text(json.dumps(side, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    os.replace(side_tmp, sidecar_path(path))  # the digest check on load catches a crash between the two
    return digest


def load_checkpoint(path: Path, device: str = "cpu"):
    """``(model, vocab, sidecar)`` from a checkpoint; weights load through safetensors only."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        side = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"No usable caption decoder at {path} ({exc}); run 'clipdesk captions train'.") from exc
    if side.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"The caption decoder at {path} has format {side.get('format')}, "
                              f"this clipdesk reads {FORMAT_VERSION}; run 'clipdesk captions train' again.")
    if not path.is_file() or _sha256(path) != side.get("weights_sha256"):
        raise CheckpointError(f"The caption decoder weights at {path} are missing or do not match their "
                              "sidecar; run 'clipdesk captions train' again.")
    cfg = DecoderConfig(**side["config"])
    model = build_model(cfg)
    model.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    model.to(device).eval()
    return model, Vocab(side["vocab"]), side


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
