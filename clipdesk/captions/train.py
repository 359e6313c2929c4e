"""Train the embedding decoder on caption text for one CLIP model (``clipdesk captions train``).

Steps: encode the training captions with the model's text encoder (cached in
chunks under ``<library>/cache/captions``, so a cancelled run resumes its
encoding), teach the decoder to write each caption back from its noisy
standardised text vector (teacher forcing, cross-entropy), keep the caption
vectors as the projection memory, score text reconstruction on held-out
captions, and save the checkpoint atomically. Cancelling saves nothing.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from clipdesk.captions.decoder import EmbeddingDecoderCaptioner
from clipdesk.captions.decoder_model import DecoderConfig, build_model, checkpoint_path, save_checkpoint
from clipdesk.captions.reconstruction import evaluate_text_reconstruction
from clipdesk.captions.textdata import PAD, Vocab, load_split, normalise
from clipdesk.engine.clip import pick_device
from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress

__all__ = ["TrainResult", "evaluate_text_reconstruction", "train"]

# Defaults sized for a CPU in minutes (docs/perf.md, "Caption decoder training"):
# encoding dominates with a real model (a ViT-B-32 text tower encodes ~16 captions/s
# on 2 shared cores), so the cap bounds the time; a GPU can take every caption.
DEFAULT_MAX_CAPTIONS = 8000
DEFAULT_EPOCHS = 6
DEFAULT_HELD_OUT = 300
DEFAULT_NOISE = 0.5  # in units of each dimension's spread over the training captions
MEMORY_MAX = 50_000
CHUNK = 1024


@dataclass
class TrainResult:
    path: Path | None = None  # the checkpoint, None when cancelled
    model_key: str = ""
    captions: int = 0
    vocab_size: int = 0
    epochs: int = 0
    steps: int = 0
    train_loss: float = float("nan")  # mean over the last epoch
    held_out: dict = field(default_factory=dict)  # evaluate_text_reconstruction's result
    seconds_encoding: float = 0.0
    seconds_training: float = 0.0
    seconds: float = 0.0
    cancelled: bool = False


def train(engine, library_dir: Path, *, epochs: int = DEFAULT_EPOCHS, max_captions: int | None = DEFAULT_MAX_CAPTIONS,
          held_out: int = DEFAULT_HELD_OUT, data_dir: Path | None = None, width: int = 192, layers: int = 2,
          batch_size: int = 64, lr: float = 1e-3, noise: float = DEFAULT_NOISE, seed: int = 0,
          threads: int | None = None, progress: ProgressCallback = no_progress,
          cancel: CancelToken | None = None) -> TrainResult:
    """Train, evaluate and save the decoder for ``engine.key``; see the module docstring.

    ``threads`` sets torch's CPU threads for the run (restored afterwards). One thread is
    far faster when other processes keep the cores busy: measured 1.2 s against 7.8 s per
    step on 2 shared cores, because torch's thread pool spins against the other load.
    """
    import torch

    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train(engine, library_dir, epochs=epochs, max_captions=max_captions, held_out=held_out,
                      data_dir=data_dir, width=width, layers=layers, batch_size=batch_size, lr=lr, noise=noise,
                      seed=seed, progress=progress, cancel=cancel)
    finally:
        torch.set_num_threads(saved)


def _train(engine, library_dir, *, epochs, max_captions, held_out, data_dir, width, layers, batch_size, lr, noise,
           seed, progress, cancel) -> TrainResult:
    import torch

    cancel = cancel or CancelToken()
    t0 = time.perf_counter()
    result = TrainResult(model_key=engine.key)
    split = load_split(data_dir)
    captions = split.train_captions(max_captions)
    held = split.held_out_captions(held_out)
    cache = Path(library_dir) / "cache" / "captions"
    vectors = encode_cached(engine, captions + held, cache, progress, cancel)
    result.seconds_encoding = time.perf_counter() - t0
    if vectors is None:
        result.cancelled = True
        return result
    train_vecs, held_vecs = vectors[: len(captions)], vectors[len(captions):]

    vocab = Vocab.build(captions)
    device = engine.device or pick_device(engine.requested_device)  # unloaded when all vectors were cached
    memory = train_vecs[np.linspace(0, len(train_vecs) - 1, min(len(train_vecs), MEMORY_MAX)).astype(int)]
    cfg = DecoderConfig(embed_dim=train_vecs.shape[1], vocab_size=len(vocab), width=width, layers=layers,
                        heads=max(1, width // 64), memory_size=len(memory))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(cfg)
    model.emb_mean.copy_(torch.from_numpy(train_vecs.mean(0)))
    model.emb_std.copy_(torch.from_numpy(train_vecs.std(0)).clamp_min(1e-6))
    model.memory.copy_(torch.from_numpy(memory).half())
    model.to(device)

    t1 = time.perf_counter()
    tokens = _token_matrix(vocab, captions, cfg.max_words)
    with torch.random.fork_rng(devices=[]):  # dropout and noise draws repeat run to run, without side effects
        torch.manual_seed(seed)
        stats = _fit(model, torch.from_numpy(train_vecs), tokens, epochs=epochs, batch_size=batch_size, lr=lr,
                     noise=noise, seed=seed, device=device, progress=progress, cancel=cancel)
    result.seconds_training = time.perf_counter() - t1
    if stats is None:
        result.cancelled = True
        result.seconds = time.perf_counter() - t0
        return result
    model.eval()

    meta = {
        "model_key": engine.key,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "captions": len(captions),
        "epochs": epochs,
        "noise": noise,
        "most_frequent_caption": _most_frequent(captions),
        **stats,
    }
    progress(Progress("evaluating", 0, len(held)))
    captioner = EmbeddingDecoderCaptioner(model, vocab, meta, device)
    scores = evaluate_text_reconstruction(captioner, engine, held, embeddings=held_vecs) if held else {}
    progress(Progress("evaluating", len(held), len(held)))
    result.seconds = time.perf_counter() - t0
    meta |= {"held_out": scores, "seconds_encoding": round(result.seconds_encoding, 1),
             "seconds_training": round(result.seconds_training, 1), "seconds": round(result.seconds, 1)}
    path = checkpoint_path(Path(library_dir), engine.key)
    save_checkpoint(path, model, vocab, meta)
    return replace(result, path=path, captions=len(captions), vocab_size=len(vocab), epochs=epochs,
                   steps=stats["steps"], train_loss=stats["train_loss"], held_out=scores)


def _fit(model, vecs, tokens, *, epochs, batch_size, lr, noise, seed, device, progress, cancel) -> dict | None:
    import torch
    from torch.nn import functional as F  # noqa: N812

    cuda = device.startswith("cuda")
    per_epoch = math.ceil(len(tokens) / batch_size)
    total = max(1, epochs * per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, total // 20)
    # Linear warm-up then cosine decay: stable for small transformers trained from scratch.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0)))))
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    gen = torch.Generator().manual_seed(seed)
    step, last = 0, []
    model.train()
    progress(Progress("training", 0, total))
    for _epoch in range(epochs):
        last = []
        for idx in torch.randperm(len(tokens), generator=gen).split(batch_size):
            if cancel.checkpoint():
                return None
            batch = tokens[idx]
            batch = batch[:, : int((batch != PAD).sum(1).max())].to(device)  # trim to the longest caption
            emb = vecs[idx].to(device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
                logits = model(emb, batch[:, :-1], noise=noise)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                                       ignore_index=PAD)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            last.append(float(loss.detach()))
            progress(Progress("training", step, total))
    return {"steps": step, "train_loss": round(sum(last) / max(len(last), 1), 4)}


def _token_matrix(vocab: Vocab, captions: list[str], max_words: int):
    import torch

    out = torch.full((len(captions), max_words + 2), PAD, dtype=torch.long)
    for i, c in enumerate(captions):
        ids = vocab.encode(c, max_words)
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def _most_frequent(captions: list[str]) -> str:
    text = Counter(normalise(c) for c in captions).most_common(1)[0][0] if captions else ""
    return text[:1].upper() + text[1:]


def encode_cached(engine, texts: list[str], cache_dir: Path, progress: ProgressCallback = no_progress,
                  cancel: CancelToken | None = None) -> np.ndarray | None:
    """Text vectors for ``texts``, reusing chunk files keyed by model and content; None if cancelled."""
    cancel = cancel or CancelToken()
    folder = Path(cache_dir) / re.sub(r"[^A-Za-z0-9._-]+", "_", engine.key)
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    progress(Progress("encoding captions", 0, len(texts)))
    for start in range(0, len(texts), CHUNK):
        if cancel.checkpoint():
            return None
        chunk = texts[start:start + CHUNK]
        key = hashlib.sha256("\0".join([engine.key, *chunk]).encode()).hexdigest()[:24]
        path = folder / f"{key}.npy"
        vecs = None
        if path.is_file():
            try:
                vecs = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                vecs = None  # a damaged chunk is encoded again
        if vecs is None or vecs.shape[0] != len(chunk):
            vecs = np.asarray(engine.encode_text(chunk), np.float32)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, vecs, allow_pickle=False)
            os.replace(tmp, path)
        parts.append(vecs)
        progress(Progress("encoding captions", start + len(chunk), len(texts)))
    return np.concatenate(parts) if parts else np.zeros((0, engine.dim), np.float32)
