"""Where a model's weights come from, and whether this install can load them without a download.

open_clip names a tag's weights ``org/repo/`` (the repository's default files)
or ``org/repo/file.bin`` (one file), and for either it tries a
``.safetensors`` twin first, then the named file; a few tags have only a
URL. This module follows those rules, so that clipdesk fetches the file
open_clip would load, and "present" means "loadable by this install": the
packaged app (no torch) reads safetensors only, so a ``.bin`` on disk does
not count there and is never downloaded by it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from clipdesk.engine.base import torch_available
from clipdesk.engine.hub import HUB_SAFE_WEIGHTS, HUB_WEIGHTS, cached_hub_file
from clipdesk.engine.registry import ModelSpec, preprocess_of, tag_config
from clipdesk.paths import models_dir


@dataclass(frozen=True)
class WeightSource:
    """``kind``: hub (a repository file), url (a plain download), file (on disk already), random, or config
    (``hf-hub:``/``local-dir:`` names, which open_clip resolves itself)."""

    kind: str
    repo: str | None = None
    filenames: tuple[str, ...] = ()  # candidates in open_clip's order of preference
    url: str | None = None
    path: Path | None = None  # file and url sources: where the file is, or goes
    tokenizer_repo: str | None = None  # hub repository of an HF tokenizer (SigLIP), fetched with the weights
    preprocess: dict = field(default_factory=dict)


def readable(filename: str) -> bool:
    """Whether this install can load a weights file of this name (safetensors, or PyTorch with torch)."""
    return filename.endswith(".safetensors") or torch_available()


def hub_candidates(hf_hub: str) -> tuple[str, tuple[str, ...]]:
    """(repo, file names) for an open_clip ``hf_hub`` entry, as ``download_pretrained_from_hf`` tries them."""
    repo, filename = os.path.split(hf_hub.strip())
    repo = repo.strip("/")
    if not filename:
        return repo, (HUB_SAFE_WEIGHTS, HUB_WEIGHTS)
    stem, ext = os.path.splitext(filename)
    if ext in (".bin", ".pth") and filename != HUB_WEIGHTS:
        return repo, (stem + ".safetensors", filename)
    if filename == HUB_WEIGHTS:
        return repo, (HUB_SAFE_WEIGHTS, HUB_WEIGHTS)
    return repo, (filename,)


def weight_source(spec: ModelSpec) -> WeightSource:
    tokenizer = tokenizer_repo(spec.arch)
    pre = preprocess_of(spec)
    if spec.random_init:
        return WeightSource("random", tokenizer_repo=tokenizer)
    if spec.arch.startswith(("hf-hub:", "local-dir:")):
        return WeightSource("config")
    if spec.checkpoint:
        kind = "url" if spec.url else "file"
        return WeightSource(kind, url=spec.url, path=Path(spec.checkpoint), tokenizer_repo=tokenizer, preprocess=pre)
    cfg = tag_config(spec.arch, spec.pretrained or "")
    if cfg.get("file"):
        return WeightSource("file", path=Path(cfg["file"]), tokenizer_repo=tokenizer, preprocess=pre)
    if cfg.get("hf_hub"):
        repo, names = hub_candidates(cfg["hf_hub"])
        if spec.hub_files is not None:  # what the repository is known to hold: skip requests that would fail
            names = tuple(n for n in names if n in spec.hub_files) or names
        return WeightSource("hub", repo=repo, filenames=names, tokenizer_repo=tokenizer, preprocess=pre)
    if cfg.get("url"):
        url = cfg["url"]
        return WeightSource("url", url=url, path=models_dir() / os.path.basename(url), tokenizer_repo=tokenizer,
                            preprocess=pre)
    return WeightSource("hub", tokenizer_repo=tokenizer, preprocess=pre)  # no repository: nothing to fetch


def tokenizer_repo(arch: str) -> str | None:
    """The hub repository of ``arch``'s Hugging Face tokenizer, for models that use one (SigLIP)."""
    try:
        import open_clip
    except ImportError:
        return None  # the packaged app runs only CLIP-BPE models
    if arch.startswith(("hf-hub:", "local-dir:")):
        return None  # open_clip resolves these itself
    cfg = open_clip.get_model_config(arch) or {}
    return (cfg.get("text_cfg") or {}).get("hf_tokenizer_name") or None


def cached_weights(spec: ModelSpec) -> Path | None:
    """The weights file of ``spec`` on disk that this install can load, or None."""
    source = weight_source(spec)
    if source.kind in ("file", "url"):
        path = source.path
        return path if path is not None and path.is_file() and readable(path.name) else None
    if source.kind == "hub" and source.repo:
        for name in source.filenames:
            if readable(name):
                found = cached_hub_file(source.repo, name)
                if found is not None:
                    return found
    return None


def tokenizer_present(source: WeightSource) -> bool:
    if not source.tokenizer_repo:
        return True
    from clipdesk.engine.hf_tokenizer import cached_tokenizer_dir

    return cached_tokenizer_dir(source.tokenizer_repo, str(models_dir())) is not None


def weights_present(spec: ModelSpec) -> bool:
    """Whether ``spec`` can load without a download (checks files only)."""
    source = weight_source(spec)
    if source.kind == "random":
        return True
    if source.kind == "config":
        if spec.arch.startswith("local-dir:"):
            return Path(spec.arch.removeprefix("local-dir:")).is_dir()
        repo = spec.arch.removeprefix("hf-hub:")
        return cached_hub_file(repo, "open_clip_config.json") is not None and any(
            cached_hub_file(repo, n) for n in (HUB_SAFE_WEIGHTS, HUB_WEIGHTS) if readable(n))
    return cached_weights(spec) is not None and tokenizer_present(source)


def loadable_here(spec: ModelSpec) -> str | None:
    """Why this install cannot run ``spec`` at all, or None (used to keep such presets off the lists)."""
    if torch_available():
        return None
    from clipdesk.engine.onnx_files import find_graph_dir

    if find_graph_dir(spec) is None:
        return f"{spec.arch} has no ONNX graph in this build"
    source = weight_source(spec)
    names = [source.path.name] if source.path is not None else list(source.filenames)
    if spec.random_init or any(n.endswith(".safetensors") for n in names):
        return None
    if spec.checkpoint and not spec.url:
        return None  # a user's own file: export-onnx may have left a safetensors copy beside the graph
    return f"its weights come only as {', '.join(names) or 'a PyTorch file'}, which needs PyTorch to read"
