"""Getting a model's weights onto disk, verified; and what device it will run on.

Used by the first-run dialog and by the engines on first use. Hub weights go
through the hub client into the shared models cache (so every part of
clipdesk finds them, as open_clip would); the file is then hashed and
compared with a SHA-256 recorded here or, failing that, the one the hub
publishes for the file (the LFS object id). A mismatch deletes the file *and*
the cached blob behind it: the hub client would otherwise relink the same
damaged blob on every retry. Weights published only at a URL (the MCIP
checkpoints) go through ``url_download``, which records size and SHA-256 at
the first download because their authors publish none. The hub client's
side of this (cache lookups, published hashes, progress, error wording) is
``hub``; hashing is ``digest``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from clipdesk.engine.base import backend_name, onnx_providers
from clipdesk.engine.digest import ChecksumMismatch, sha256_file
from clipdesk.engine.hub import hub_errors, progress_bar_class, published_sha256
from clipdesk.engine.registry import ModelSpec
from clipdesk.engine.sources import cached_weights, readable, tokenizer_present, weight_source, weights_present
from clipdesk.errors import Cancelled, ModelNotAvailable
from clipdesk.jobs import CancelToken
from clipdesk.paths import models_dir

log = logging.getLogger(__name__)

# SHA-256 of weight files checked by hand, by (repository, file); others use the hub's published hash.
KNOWN_SHA256: dict[tuple[str, str], str] = {}


def _stop_if_cancelled(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.checkpoint():
        raise Cancelled("Download cancelled.")


def discard_cached(path: Path) -> None:
    """Delete a cached file: the snapshot link and the blob it points to."""
    path = Path(path)
    blob = Path(os.path.realpath(path))
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)


def verify_sha256(path: Path, expected: str, cancel: CancelToken | None = None) -> None:
    """Raise ``ChecksumMismatch`` (and delete ``path`` and its blob) unless its SHA-256 is ``expected``."""
    actual = sha256_file(path, cancel)
    if actual != expected.lower():
        discard_cached(path)
        raise ChecksumMismatch(f"The downloaded file {Path(path).name} is damaged (SHA-256 {actual[:12]}…, "
                               f"expected {expected[:12]}…) and was deleted; download it again.")


def download_weights(spec: ModelSpec, on_progress: Callable[[int, int], None],
                     cancel: CancelToken | None = None, fetch=None, published=None,
                     on_note: Callable[[str], None] | None = None) -> Path:
    """Download ``spec``'s weights (and its tokenizer files) into the models cache, verified; returns the path.

    ``fetch(repo, filename, cache_dir, tqdm_class)`` defaults to ``hf_hub_download``; tests pass their own.
    ``on_note`` gets what a URL download was checked against (for MCIP: nothing published, so the first
    download's size and SHA-256 were recorded), for the user to read.
    """
    source = weight_source(spec)
    existing = cached_weights(spec)
    if existing is not None:  # e.g. a checkpoint the user put there, with only its tokenizer missing
        path = existing
    elif source.kind == "url":
        from clipdesk.engine.url_download import download_url

        if not readable(source.path.name):
            raise ModelNotAvailable(f"Model '{spec.name}' comes as {source.path.name}, a PyTorch file this build "
                                    "cannot read (it has no PyTorch); use the Python install of clipdesk.")
        result = download_url(source.url, source.path, on_progress, cancel)
        (on_note or log.warning)(result.note)
        path = result.path
    elif source.kind == "hub" and source.repo:
        path = _download_hub(spec, source, on_progress, cancel, fetch, published)
    else:
        raise ModelNotAvailable(f"Model '{spec.name}' does not come from the model hub; choose its file instead.")
    if source.tokenizer_repo and not tokenizer_present(source):
        from clipdesk.engine.hf_tokenizer import fetch_tokenizer_files

        if not hub_reachable():
            raise ModelNotAvailable(f"The tokenizer of '{spec.name}' ({source.tokenizer_repo} on the model hub) is not "
                                    "downloaded yet, and the hub can't be reached; connect to the internet once.")
        with hub_errors(source.tokenizer_repo):
            fetch_tokenizer_files(source.tokenizer_repo, str(models_dir()))
    return path


def _download_hub(spec, source, on_progress, cancel, fetch, published) -> Path:
    from huggingface_hub.errors import EntryNotFoundError

    if not hub_reachable():
        raise ModelNotAvailable(offline_message(spec))
    names = [n for n in source.filenames if readable(n)]
    if not names:
        raise ModelNotAvailable(
            f"The hub repository {source.repo} holds the weights of '{spec.name}' only as "
            f"{', '.join(source.filenames)}, which this build cannot read (it has no PyTorch and reads "
            ".safetensors only); use the Python install of clipdesk, or a .safetensors file you have.")
    if fetch is None:
        from huggingface_hub import hf_hub_download as fetch
    published = published or published_sha256
    for name in names:
        try:
            with hub_errors(source.repo):
                expected = KNOWN_SHA256.get((source.repo, name)) or published(source.repo, name)
        except EntryNotFoundError:
            continue  # open_clip's order: the next file name
        bar = progress_bar_class(on_progress, cancel)
        try:
            with hub_errors(source.repo):
                path = Path(fetch(source.repo, name, cache_dir=str(models_dir()), tqdm_class=bar))
        except Cancelled:
            raise
        except Exception:
            if cancel is not None and cancel.cancelled:  # whatever a stopped transfer raised
                raise Cancelled("Download cancelled.") from None
            raise
        _stop_if_cancelled(cancel)
        verify_sha256(path, expected, cancel)
        return path
    raise ModelNotAvailable(f"The hub repository {source.repo} has none of {', '.join(names)} for '{spec.name}'"
                            + ("" if readable(".bin") else " (this build reads .safetensors only)") + ".")


def offline_message(spec: ModelSpec) -> str:
    return (f"The model hub (huggingface.co) can't be reached, so the weights of '{spec.name}' cannot be "
            "downloaded now. Connect to the internet and try again, or use a checkpoint file you already have "
            f"for {spec.arch}.")


def prefetch_weights(spec: ModelSpec, on_download: Callable[[int, int], None],
                     cancel: CancelToken | None = None) -> None:
    """Fetch ``spec``'s weights on first use, with progress; nothing when present or when offline.

    Offline, the engine's own message (which file, where it looked, how to
    give a local one) says more than a network error would.
    """
    source = weight_source(spec)
    if source.kind not in ("hub", "url") or weights_present(spec):
        return
    if not (hub_reachable() if source.kind == "hub" else host_reachable(source.url)):
        return
    download_weights(spec, on_download, cancel)


_REACHABLE: bool | None = None  # the hub's answer, once per process
_HOSTS: dict[str, bool] = {}


def offline() -> bool:
    """``HF_HUB_OFFLINE=1`` (the hub client's own switch) keeps every download off, URL ones too."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable() -> bool:
    """Quick check (once per process) that the model hub answers at all."""
    global _REACHABLE
    if _REACHABLE is None:
        from huggingface_hub import constants

        _REACHABLE = not offline() and _connects(urlparse(constants.ENDPOINT).hostname or "huggingface.co", 443)
    return _REACHABLE


def host_reachable(url: str) -> bool:
    """The same check for a plain download URL's host."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if host not in _HOSTS:
        _HOSTS[host] = not offline() and bool(host) and _connects(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    return _HOSTS[host]


def _connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return False
    return True


@contextmanager
def offline_unless_reachable():
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


def device_report() -> tuple[str, bool]:
    """(one line for the user, whether a GPU will be used) for the engine this install runs."""
    if backend_name() == "onnx":
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
            try:  # mapped: a 3.5 GB checkpoint is not read into memory just to list its keys
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # the legacy (pre-zip) format cannot be mapped
                state = torch.load(path, map_location="cpu", weights_only=True)
            keys = list((state.get("state_dict", state) if isinstance(state, dict) else {}).keys())
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same answer
        return f"Cannot read {path.name}: {(str(exc).splitlines() or [type(exc).__name__])[0][:200]}"
    keys = [k.removeprefix("module.") for k in keys]
    if not any(k.startswith("visual.") for k in keys) or not any(k.startswith(("token_embedding", "text.")) for k in keys):
        return f"{path.name} holds no CLIP image and text weights."
    return None
