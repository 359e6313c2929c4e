"""Getting a model's weights onto disk, verified; and what device it will run on.

Used by the app's first-run dialog. The download goes through the hub client
into the shared models cache (so every part of clipdesk finds it, and an
interrupted download resumes); the file is then hashed and compared with a
SHA-256 recorded here or, failing that, the one the hub publishes for the
file (the LFS object id). A mismatch deletes the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from clipdesk.engine.registry import ModelSpec, hub_repo
from clipdesk.errors import Cancelled, ClipdeskError, ModelNotAvailable
from clipdesk.jobs import CancelToken
from clipdesk.paths import models_dir

WEIGHTS_FILE = "open_clip_model.safetensors"
# SHA-256 of weight files checked by hand, by (repository, file); others use the hub's published hash.
KNOWN_SHA256: dict[tuple[str, str], str] = {}


class ChecksumMismatch(ClipdeskError):
    exit_code = 3


def _stop_if_cancelled(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.checkpoint():
        raise Cancelled("Download cancelled.")


def sha256_file(path: Path, cancel: CancelToken | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            _stop_if_cancelled(cancel)
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, cancel: CancelToken | None = None) -> None:
    """Raise ``ChecksumMismatch`` (and delete ``path``) unless its SHA-256 is ``expected``."""
    actual = sha256_file(path, cancel)
    if actual != expected.lower():
        Path(path).unlink(missing_ok=True)
        raise ChecksumMismatch(f"The downloaded file {Path(path).name} is damaged (SHA-256 {actual[:12]}…, "
                               f"expected {expected[:12]}…) and was deleted; download it again.")


def published_sha256(repo: str, filename: str) -> str:
    """The SHA-256 the hub publishes for an LFS file (its ETag)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(repo, filename))
    etag = (meta.etag or "").strip('"')
    if len(etag) != 64:
        raise ModelNotAvailable(f"The model hub published no SHA-256 for {repo}/{filename}, so it cannot be verified.")
    return etag


def download_weights(spec: ModelSpec, on_progress: Callable[[int, int], None],
                     cancel: CancelToken | None = None, fetch=None, published=published_sha256) -> Path:
    """Download ``spec``'s weights file into the models cache and verify it; returns its path.

    ``fetch(repo, filename, cache_dir, tqdm_class)`` defaults to ``hf_hub_download``; tests pass their own.
    """
    from tqdm.auto import tqdm

    repo = hub_repo(spec)
    if not repo:
        raise ModelNotAvailable(f"Model '{spec.name}' does not come from the model hub; choose its file instead.")
    if fetch is None:
        from huggingface_hub import hf_hub_download as fetch
    expected = KNOWN_SHA256.get((repo, WEIGHTS_FILE)) or published(repo, WEIGHTS_FILE)
    token = cancel

    class Progress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # the callback is the display
            super().__init__(*args, **kwargs)
            self.done = 0

        def update(self, n=1):
            _stop_if_cancelled(token)
            self.done += n or 0
            on_progress(self.done, int(self.total or 0))

    path = Path(fetch(repo, WEIGHTS_FILE, cache_dir=str(models_dir()), tqdm_class=Progress))
    verify_sha256(path, expected, cancel)
    return path


def device_report() -> tuple[str, bool]:
    """(one line for the user, whether a GPU will be used) for the engine this install runs."""
    from clipdesk.engine.backend import backend_name

    if backend_name() == "onnx":
        from clipdesk.engine.onnx_engine import onnx_providers

        _, device, why = onnx_providers("auto")
        return (f"GPU used: {why}", True) if device == "cuda" else (f"Runs on the CPU: {why}.", False)
    import torch

    if torch.cuda.is_available():
        return f"GPU used: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})", True
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "GPU used: Apple GPU (Metal)", True
    if torch.version.cuda is None:
        return "Runs on the CPU: this PyTorch build has no CUDA support.", False
    return "Runs on the CPU: no NVIDIA GPU or driver was found.", False


def check_checkpoint(path: Path) -> str | None:
    """Why ``path`` is not a usable CLIP checkpoint, or None. Loads only safetensors or weights-only files."""
    from clipdesk.engine.registry import CHECKPOINT_SUFFIXES

    if not path.is_file():
        return f"File not found: {path}"
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        return f"{path.name} is not a checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)})."
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "numpy") as fh:
                keys = list(fh.keys())
        else:
            try:
                import torch
            except ImportError:
                return "This build reads .safetensors checkpoints only (a PyTorch file needs PyTorch to open)."
            state = torch.load(path, map_location="cpu", weights_only=True)
            keys = list((state.get("state_dict", state) if isinstance(state, dict) else {}).keys())
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same answer
        return f"Cannot read {path.name}: {(str(exc).splitlines() or [type(exc).__name__])[0][:200]}"
    keys = [k.removeprefix("module.") for k in keys]
    if not any(k.startswith("visual.") for k in keys) or not any(k.startswith(("token_embedding", "text.")) for k in keys):
        return f"{path.name} holds no CLIP image and text weights."
    return None
