"""The CLIP engine: lazy open_clip loading, batched normalised encoding."""

from __future__ import annotations

import logging
import os
import pickle
import re
import socket
import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from clipdesk.engine.registry import ModelSpec, register_tiny
from clipdesk.errors import ModelNotAvailable
from clipdesk.paths import models_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputSpec:
    """What decode workers must produce for this model."""

    size: int
    squash: bool  # resize the whole frame (SigLIP) instead of centre-cropping


# What --device and the settings accept.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class ClipEngine:
    """One model on one device. ``model`` loads on first use, thread-safely."""

    def __init__(self, spec: ModelSpec, device: str = "auto", batch_size: int = 32,
                 on_download: Callable[[int, int], None] | None = None) -> None:
        """``on_download(done_bytes, total_bytes)`` reports a first-use weights download."""
        self.spec = spec
        self.on_download = on_download
        self.requested_device = device
        self.batch_size = batch_size
        self._lock = threading.Lock()
        # One batch at a time: indexing and searches from other threads take
        # turns per batch, so a search never waits for a whole indexing run.
        self._infer_lock = threading.Lock()
        self._model = None
        self._tokenizer = None
        self.device: str | None = None
        self._dtype = None
        self._dim = 0

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._load()
        return self._model

    def _load(self) -> None:
        import open_clip
        import torch

        register_tiny()
        device = pick_device(self.requested_device)
        precision = "fp16" if device.startswith("cuda") else "fp32"
        spec = self.spec
        cache_dir = str(models_dir())
        try:
            if spec.checkpoint and not Path(spec.checkpoint).is_file():
                raise FileNotFoundError(spec.checkpoint)
            if spec.random_init:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)  # same weights in every process
                    model = open_clip.create_model(spec.arch, pretrained=None, precision=precision, device=device)
            else:
                if self.on_download is not None:
                    prefetch_weights(spec, cache_dir, self.on_download)
                with _offline_unless_reachable():
                    model = open_clip.create_model(
                        spec.arch,
                        pretrained=spec.checkpoint or spec.pretrained,
                        precision=precision,
                        device=device,
                        cache_dir=cache_dir,
                        require_pretrained=True,
                        weights_only=True,
                    )
            with _offline_unless_reachable():
                tokenizer = open_clip.get_tokenizer(spec.arch, cache_dir=cache_dir)
        except Exception as exc:  # noqa: BLE001 - every failure here becomes one clear message
            raise ModelNotAvailable(_missing_message(spec, exc, cache_dir)) from exc
        model.eval()
        self._tokenizer = tokenizer
        self._dtype = next(model.parameters()).dtype
        self.device = device
        pre = open_clip.get_model_preprocess_cfg(model)
        size = pre.get("size", 224)
        self.input = InputSpec(
            size=int(size if isinstance(size, int) else size[0]),
            squash=pre.get("resize_mode") == "squash",
        )
        self._mean = torch.tensor(pre.get("mean", open_clip.OPENAI_DATASET_MEAN), device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(pre.get("std", open_clip.OPENAI_DATASET_STD), device=device).view(1, 3, 1, 1)
        self._model = model
        self._dim = int(self.encode_text(["a photo"]).shape[1])
        log.info("loaded %s on %s (%s)", spec.label, device, precision)

    def input_spec(self) -> InputSpec:
        self.model  # noqa: B018 - loads
        return self.input

    @property
    def dim(self) -> int:
        self.model  # noqa: B018 - loads
        return self._dim

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Encode uint8 ``N x S x S x 3`` arrays; returns float32 unit vectors."""
        import torch

        model = self.model
        out = []
        with torch.inference_mode(), self._infer_lock:
            for start in range(0, len(pixels), self.batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(pixels[start : start + self.batch_size]))
                x = chunk.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
                x = ((x - self._mean) / self._std).to(self._dtype)
                out.append(self._normalise(model.encode_image(x)))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self.model
        out = []
        with torch.inference_mode(), self._infer_lock:
            for start in range(0, len(texts), self.batch_size):
                tokens = self._tokenizer(list(texts[start : start + self.batch_size])).to(self.device)
                out.append(self._normalise(model.encode_text(tokens)))
        return np.concatenate(out)

    def encode_files(self, paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """Encode image files outside the library (query images)."""
        from clipdesk.imageio import read_photo

        spec = self.input_spec()
        pixels = np.stack([read_photo(p, spec.size, spec.squash).pixels for p in paths])
        return self.encode_pixels(pixels)

    @staticmethod
    def _normalise(t) -> np.ndarray:
        t = t.float()
        t = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return t.cpu().numpy().astype(np.float32)


def prefetch_weights(spec: ModelSpec, cache_dir: str, on_download: Callable[[int, int], None]) -> None:
    """Download a hub model's weights into the cache, reporting progress.

    open_clip would fetch the same file silently; fetching it first (same
    repository, file name and cache) lets the app show a progress bar. The
    hub client checks each file against the size and hash the hub publishes.
    Does nothing when the weights are already cached or the hub is unreachable.
    """
    from huggingface_hub import hf_hub_download
    from tqdm.auto import tqdm

    from clipdesk.engine.registry import HUB_WEIGHT_FILES, hub_repo, weights_present

    repo = hub_repo(spec)
    if not repo or weights_present(spec) or not hub_reachable():
        return

    class Progress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # no terminal output: the callback is the display
            super().__init__(*args, **kwargs)
            self.done = 0  # a disabled tqdm stops counting, so count here

        def update(self, n=1):
            self.done += n or 0
            on_download(self.done, int(self.total or 0))

    for name in HUB_WEIGHT_FILES:  # safetensors first, like open_clip
        try:
            hf_hub_download(repo, name, cache_dir=cache_dir, tqdm_class=Progress)
            return
        except Exception:  # noqa: BLE001 - the next name, then open_clip itself, will say what failed
            log.debug("no %s in %s", name, repo)


_REACHABLE: bool | None = None


def hub_reachable() -> bool:
    """Quick check (once per process) that the model hub answers at all."""
    global _REACHABLE
    if _REACHABLE is None:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            _REACHABLE = False
        else:
            host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
            try:
                socket.create_connection((host, 443), timeout=3).close()
                _REACHABLE = True
            except OSError:
                _REACHABLE = False
    return _REACHABLE


@contextmanager
def _offline_unless_reachable():
    """Use only the local cache when the hub is unreachable.

    huggingface_hub would otherwise retry with back-off for about a minute
    before giving up, and the user would wait for nothing.
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    if not hub_reachable():
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def _missing_message(spec: ModelSpec, exc: Exception, cache_dir: str) -> str:
    what = f"Model '{spec.name}' (open_clip architecture {spec.arch}"
    if spec.checkpoint:
        where = f"the checkpoint file {spec.checkpoint}"
        what += ", local checkpoint)"
        fix = (
            f"Put the file at {spec.checkpoint}"
            + (f" (get it from {spec.checkpoint_hint})" if spec.checkpoint_hint else "")
            + f", or pass --model {spec.arch}:/path/to/checkpoint."
        )
    else:
        where = f"the download cache {cache_dir}"
        what += f", weights '{spec.pretrained}')" if spec.pretrained else ")"
        fix = (
            "Connect to the internet once so clipdesk can download it, or use a file you already have: "
            f"--model {spec.arch if not spec.arch.startswith(('hf-hub:', 'local-dir:')) else 'ARCH'}:"
            "/path/to/open_clip_model.safetensors (set CLIPDESK_MODELS to change the cache)."
        )
    if isinstance(exc, FileNotFoundError):
        reason = "file not found"
    elif isinstance(exc, pickle.UnpicklingError):
        reason = "refused to load it: the file holds more than plain weights (only safetensors or weights-only PyTorch files load)"
    elif not spec.checkpoint and not hub_reachable():
        reason = "not downloaded yet, and the model hub cannot be reached"
    else:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"{what} is not available: looked in {where}; {reason[:200]}. {fix}"
