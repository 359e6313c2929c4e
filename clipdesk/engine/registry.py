"""Model specs: presets plus any open_clip name, ``hf-hub:`` id or local file.

Spec grammar accepted by ``resolve`` (what ``--model`` takes):

- a preset name (``clipdesk models`` lists them), e.g. ``vit-b-32``;
- ``ARCH/TAG``: any open_clip architecture with a pretrained tag;
- ``hf-hub:ORG/REPO``: an open_clip model published on the Hugging Face hub;
- ``ARCH:FILE``: an open_clip architecture with a local checkpoint
  (``.safetensors``, or a PyTorch file loaded with ``weights_only=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from clipdesk.errors import ModelSpecError
from clipdesk.paths import models_dir

TINY_ARCH = "clipdesk-tiny-random"
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one CLIP model, and the identity its embeddings carry."""

    name: str
    arch: str
    pretrained: str | None = None  # open_clip tag, or None
    checkpoint: str | None = None  # a local weights file loaded over ``arch``
    checkpoint_hint: str | None = None  # where a preset's file can be obtained
    random_init: bool = False
    description: str = ""

    @property
    def key(self) -> str:
        """Identity of the embedding space: same key, comparable vectors."""
        if self.random_init:
            return f"open_clip:{self.arch}:random-seed0"
        if self.checkpoint:
            return f"open_clip:{self.arch}:file-{_file_digest(Path(self.checkpoint))}"
        return f"open_clip:{self.arch}:{self.pretrained or 'hub'}"

    @property
    def label(self) -> str:
        if self.random_init:
            return f"{self.name} (random weights, TEST ONLY: results mean nothing)"
        return self.name


PRESETS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "vit-b-32",
            "ViT-B-32",
            "datacomp_xl_s13b_b90k",
            description="Default. Fastest CLIP on a laptop CPU (~18 img/s on 2 cores) with "
            "69% ImageNet zero-shot; the best quality per second.",
        ),
        ModelSpec(
            "vit-b-32-256",
            "ViT-B-32-256",
            "datacomp_s34b_b86k",
            description="Higher quality (73% ImageNet zero-shot), about 1.3x slower than vit-b-32.",
        ),
        ModelSpec(
            "vit-b-16",
            "ViT-B-16",
            "datacomp_xl_s13b_b90k",
            description="73.5% ImageNet zero-shot, about 4.5x slower than vit-b-32 on CPU; good on a GPU.",
        ),
        ModelSpec(
            "vit-l-14",
            "ViT-L-14",
            "datacomp_xl_s13b_b90k",
            description="79% ImageNet zero-shot; needs a GPU for libraries of any size.",
        ),
        ModelSpec(
            "mcip-so400m",
            "ViT-SO400M-14-SigLIP-384",
            None,
            checkpoint="MCIP-ViT-SO400M-14-SigLIP-384.pt",
            checkpoint_hint="https://visual-computing.com/files/MCIP/MCIP-ViT-SO400M-14-SigLIP-384.pt "
            "(Schall et al., 'Optimizing CLIP Models for Image Retrieval with Maintained "
            "Joint-Embedding Alignment')",
            description="Retrieval-tuned (MCIP): much better similar-image search, text alignment "
            "kept, one embedding per image. Large: use a GPU.",
        ),
        ModelSpec(
            "tiny-random",
            TINY_ARCH,
            random_init=True,
            description="TEST ONLY: a tiny randomly initialised model so the pipeline runs "
            "offline in seconds. Its search results are meaningless.",
        ),
    )
}

DEFAULT_PRESET = "vit-b-32"


def resolve(spec: str | None) -> ModelSpec:
    """Turn a ``--model`` string into a ``ModelSpec``."""
    text = (spec or DEFAULT_PRESET).strip()
    if not text:
        raise ModelSpecError("Empty model name.")
    preset = PRESETS.get(text.lower())
    if preset is not None:
        return _with_local_checkpoint(preset)
    if text.startswith(("hf-hub:", "local-dir:")):
        return ModelSpec(text, text)
    arch, sep, rest = text.partition(":")
    if sep and rest:
        path = Path(rest).expanduser()
        _require_arch(arch, text)
        return ModelSpec(text, arch, checkpoint=str(path.resolve()))
    arch, sep, tag = text.partition("/")
    _require_arch(arch, text)
    if not sep:
        raise ModelSpecError(
            f"Model '{text}' needs weights: give ARCH/TAG (e.g. ViT-B-32/laion2b_s34b_b79k), "
            "ARCH:/path/to/checkpoint, hf-hub:ORG/REPO, or a preset name."
        )
    return ModelSpec(text, arch, tag)


def _require_arch(arch: str, text: str) -> None:
    try:
        import open_clip
    except ImportError:  # the packaged app: the architectures it has ONNX graphs for
        from clipdesk.engine.onnx_engine import find_arch_dir

        known = find_arch_dir(arch) is not None
    else:
        register_tiny()
        known = arch in open_clip.list_models()
    if not known:
        raise ModelSpecError(
            f"Unknown model '{text}': '{arch}' is not an open_clip architecture or a clipdesk preset. "
            f"Presets: {', '.join(PRESETS)}."
        )


def _with_local_checkpoint(spec: ModelSpec) -> ModelSpec:
    if spec.checkpoint and not os.path.isabs(spec.checkpoint):
        return replace(spec, checkpoint=str(models_dir() / spec.checkpoint))
    return spec


def register_tiny() -> None:
    """Make the test-only tiny config known to open_clip (idempotent)."""
    import open_clip

    if TINY_ARCH not in open_clip.list_models():
        open_clip.add_model_config(Path(__file__).with_name("model_configs"))


def _file_digest(path: Path) -> str:
    """Short content digest of a checkpoint, cached by (size, mtime)."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    cache_file = models_dir() / "digests.json"
    stamp = f"{st.st_size}:{st.st_mtime_ns}"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(str(path))
    if entry and entry.get("stamp") == stamp:
        return entry["digest"]
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    digest = h.hexdigest()
    cache[str(path)] = {"stamp": stamp, "digest": digest}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # the cache is only an optimisation
    return digest


HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def hub_repo(spec: ModelSpec) -> str | None:
    """The Hugging Face repository holding ``spec``'s weights, if they come from the hub."""
    if spec.random_init or spec.checkpoint or spec.arch.startswith("local-dir:"):
        return None
    if spec.arch.startswith("hf-hub:"):
        return spec.arch.removeprefix("hf-hub:")
    try:
        import open_clip
    except ImportError:  # the packaged app: the ONNX graph's metadata records the hub repositories
        from clipdesk.engine.onnx_engine import read_meta

        return ((read_meta(spec.arch) or {}).get("hf_hub", {}).get(spec.pretrained or "") or "").strip("/") or None
    return (open_clip.get_pretrained_cfg(spec.arch, spec.pretrained or "").get("hf_hub") or "").strip("/") or None


def weights_present(spec: ModelSpec) -> bool:
    """Whether ``spec`` can load without a download (checks files only)."""
    if spec.random_init:
        return True
    if spec.checkpoint:
        return Path(spec.checkpoint).is_file()
    from huggingface_hub import try_to_load_from_cache

    if spec.arch.startswith("local-dir:"):
        return Path(spec.arch.removeprefix("local-dir:")).is_dir()
    repo = hub_repo(spec)
    if not repo:
        return False
    return any(
        isinstance(try_to_load_from_cache(repo, name, cache_dir=str(models_dir())), str) for name in HUB_WEIGHT_FILES
    )
