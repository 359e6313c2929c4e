"""Model specs: presets plus any open_clip name, ``hf-hub:`` id or local file.

Spec grammar accepted by ``resolve`` (what ``--model`` takes):

- a preset name (``clipdesk models`` lists them), e.g. ``vit-b-32``;
- ``ARCH/TAG``: any open_clip architecture with a pretrained tag;
- ``hf-hub:ORG/REPO``: an open_clip model published on the Hugging Face hub;
- ``ARCH:FILE``: an open_clip architecture with a local checkpoint
  (``.safetensors``, or a PyTorch file loaded with ``weights_only=True``);
- ``ARCH/TAG:FILE``: the same, built and preprocessed as weights tagged TAG
  are (fine-tunes of a tagged model: its mean/std, resize mode, activation).

A tag trained with QuickGELU (``ViT-B-32/openai``) resolves to open_clip's
``-quickgelu`` architecture: built with plain GELU it would load without an
error and quietly give worse vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from clipdesk.engine.digest import file_digest
from clipdesk.engine.hub import HUB_SAFE_WEIGHTS, HUB_WEIGHTS
from clipdesk.errors import ModelSpecError
from clipdesk.paths import models_dir

TINY_ARCH = "clipdesk-tiny-random"
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
# The keys of open_clip's PreprocessCfg that a pretrained tag may set.
PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
MCIP_PAPER = ("Schall et al., 'Optimizing CLIP Models for Image Retrieval with Maintained Joint-Embedding "
              "Alignment' (github.com/Visual-Computing/MCIP)")


@dataclass(frozen=True)
class ModelSpec:
    """How to build one CLIP model, and the identity its embeddings carry."""

    name: str
    arch: str
    pretrained: str | None = None  # open_clip tag whose weights come from the hub
    checkpoint: str | None = None  # a local weights file loaded over ``arch``
    base_tag: str | None = None  # the tag whose configuration and preprocessing a checkpoint was trained with
    url: str | None = None  # where a preset's checkpoint downloads from (no hub, no published hash)
    hub_files: tuple[str, ...] | None = None  # the weight files the hub repository is known to hold
    random_init: bool = False
    description: str = ""

    @property
    def key(self) -> str:
        """Identity of the embedding space at fp32: same key, comparable vectors.

        Engines add the precision when it is not fp32 (``embedding_key``).
        """
        if self.random_init:
            return f"open_clip:{self.arch}:random-seed0"
        if self.checkpoint:
            key = f"open_clip:{self.arch}:file-{_file_digest(Path(self.checkpoint))}"
            return key + (f"@{self.base_tag}" if self.base_tag else "")
        return f"open_clip:{self.arch}:{self.pretrained or 'hub'}"

    @property
    def label(self) -> str:
        if self.random_init:
            return f"{self.name} (random weights, TEST ONLY: results mean nothing)"
        return self.name

    @property
    def weights_tag(self) -> str | None:
        """The pretrained tag whose configuration applies: the hub tag, or a checkpoint's base tag."""
        return self.pretrained or self.base_tag


PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # what the torch engine computes
# int8: ONNX Runtime only, the fp32 graphs with weights quantized (engine/onnx_int8.py); what --precision accepts.
ALL_PRECISIONS = (*PRECISIONS, "int8")


def embedding_key(spec: ModelSpec, precision: str) -> str:
    """The key of vectors computed with ``spec`` at ``precision`` (fp32, fp16, bf16 or int8).

    fp32 keeps the plain key, so libraries indexed before precisions existed
    stay valid; half precisions and int8 change the vectors, so they get keys of their own.
    """
    return spec.key if precision == "fp32" else f"{spec.key}:{precision}"


def _mcip(name: str, arch: str, tag: str, file: str, description: str) -> ModelSpec:
    return ModelSpec(name, arch, checkpoint=file, base_tag=tag, url=f"https://visual-computing.com/files/MCIP/{file}",
                     description=description)


PRESETS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "vit-b-32",
            "ViT-B-32",
            "datacomp_xl_s13b_b90k",
            hub_files=(HUB_SAFE_WEIGHTS, HUB_WEIGHTS),
            description="Default. Fastest CLIP on a laptop CPU (~18 img/s on 2 cores) with "
            "69% ImageNet zero-shot; the best quality per second.",
        ),
        ModelSpec(
            "vit-b-32-256",
            "ViT-B-32-256",
            "datacomp_s34b_b86k",
            hub_files=(HUB_SAFE_WEIGHTS, HUB_WEIGHTS),
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
            hub_files=(HUB_WEIGHTS,),  # the repository has no safetensors file
            description="79% ImageNet zero-shot; needs a GPU for libraries of any size.",
        ),
        _mcip("mcip-vit-l-14-336", "ViT-L-14-336-quickgelu", "openai", "MCIP-ViT-L-14-336.pth",
              "Retrieval-tuned (MCIP) OpenAI ViT-L/14 at 336 px: better similar-image search, text "
              "alignment kept, one 768-d embedding per photo (1.7 GB). Use a GPU."),
        _mcip("mcip-so400m", "ViT-SO400M-14-SigLIP-384", "webli", "MCIP-ViT-SO400M-14-SigLIP-384.pth",
              "Retrieval-tuned (MCIP) SigLIP SO400M at 384 px: the best similar-image search here, text "
              "alignment kept, one 1152-d embedding per photo (3.5 GB). Use a GPU."),
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
    head, sep, rest = text.partition(":")
    if sep and rest:
        arch, _, tag = head.partition("/")
        path = str(Path(rest).expanduser().resolve())
        arch = _checked_arch(arch, tag or None, text)
        return ModelSpec(text, arch, checkpoint=path, base_tag=_clean_tag(tag) if tag else None)
    arch, sep, tag = text.partition("/")
    if not sep or not tag:
        _checked_arch(arch, None, text)
        raise ModelSpecError(
            f"Model '{text}' needs weights: give ARCH/TAG (e.g. ViT-B-32/laion2b_s34b_b79k), "
            "ARCH:/path/to/checkpoint, hf-hub:ORG/REPO, or a preset name."
        )
    arch = _checked_arch(arch, tag, text)
    return ModelSpec(text, arch, _clean_tag(tag))


def _clean_tag(tag: str) -> str:
    return tag.lower().replace("-", "_")  # as open_clip normalises tags


def _checked_arch(arch: str, tag: str | None, text: str) -> str:
    """``arch`` if it is known (and ``tag`` is one of its tags); its QuickGELU twin where the tag needs it."""
    if not _known_arch(arch):
        raise ModelSpecError(
            f"Unknown model '{text}': '{arch}' is not an open_clip architecture or a clipdesk preset. "
            f"Presets: {', '.join(PRESETS)}."
        )
    if tag is None:
        return arch
    cfg = tag_config(arch, tag)
    if not cfg:
        tags = known_tags(arch)
        hint = f"Known tags: {', '.join(tags)}." if tags else "It has no pretrained tags; give a checkpoint file."
        raise ModelSpecError(f"'{arch}' has no weights tagged '{tag}'. {hint}")
    if cfg.get("quick_gelu") and not arch.endswith("-quickgelu"):
        twin = f"{arch}-quickgelu"
        if not _known_arch(twin):
            raise ModelSpecError(f"'{arch}/{tag}' was trained with QuickGELU, and there is no '{twin}' configuration "
                                 "to build it with; this open_clip cannot run it correctly.")
        return twin
    return arch


def _known_arch(arch: str) -> bool:
    try:
        import open_clip
    except ImportError:  # the packaged app: the architectures it has ONNX graphs for
        from clipdesk.engine.onnx_files import graph_metas

        return any(meta["arch"] == arch for meta in graph_metas())
    register_tiny()
    return arch in open_clip.list_models()


def tag_config(arch: str, tag: str) -> dict:
    """open_clip's pretrained configuration of ``arch``/``tag`` ({} if unknown), without open_clip where needed."""
    try:
        import open_clip
    except ImportError:  # the packaged app: exported graphs record the tags they serve
        from clipdesk.engine.onnx_files import graph_metas

        for meta in graph_metas():
            if meta["arch"] in (arch, f"{arch}-quickgelu") and _clean_tag(tag) in meta.get("tags", {}):
                return dict(meta["tags"][_clean_tag(tag)])
        return {}
    return dict(open_clip.get_pretrained_cfg(arch, tag))


def known_tags(arch: str) -> list[str]:
    try:
        import open_clip
    except ImportError:
        from clipdesk.engine.onnx_files import graph_metas

        return sorted({t for meta in graph_metas() if meta["arch"] == arch for t in meta.get("tags", {})})
    return list(open_clip.list_pretrained_tags_by_model(arch))


def preprocess_of(spec: ModelSpec) -> dict:
    """The preprocessing ``spec``'s tag prescribes (mean, std, interpolation, resize_mode); {} for the defaults."""
    tag = spec.weights_tag
    if not tag or spec.random_init:
        return {}
    base_arch = spec.arch.removesuffix("-quickgelu")
    cfg = tag_config(spec.arch, tag) or tag_config(base_arch, tag)
    return {k: (list(cfg[k]) if isinstance(cfg[k], tuple) else cfg[k]) for k in PREPROCESS_KEYS if k in cfg}


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
    digest = file_digest(path, lambda: hashlib.blake2b(digest_size=8))
    cache[str(path)] = {"stamp": stamp, "digest": digest}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # the cache is only an optimisation
    return digest
