"""Where the exported ONNX graphs are, and which one serves a model: files only, no ONNX Runtime.

``clipdesk models export-onnx`` (``onnx_export.py``) writes one weightless
graph folder per computation (architecture plus preprocessing), looked up in
``$CLIPDESK_ONNX_PATH`` then ``<models>/onnx``. The registry reads the graphs'
metadata to know architectures and tags where open_clip is absent (the
packaged app), so this module must not import the registry: specs are typed
by the few fields it reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Protocol

from clipdesk.paths import models_dir

VISUAL, TEXT, TOKENIZER, META = "visual.onnx", "text.onnx", "tokenizer.json", "meta.json"
WEIGHT_PREFIX = "m."  # the export wrapper's attribute name in front of every state-dict key
RANDOM_WEIGHTS = "random-seed0.safetensors"
# Everything about preprocessing that changes the vectors: a graph folder is keyed by these too.
PREPROCESS_FIELDS = ("size", "mean", "std", "interpolation", "resize_mode")


class GraphSpec(Protocol):
    """What of a ``registry.ModelSpec`` the graph lookup reads."""

    arch: str
    checkpoint: str | None
    random_init: bool

    @property
    def weights_tag(self) -> str | None: ...


def graph_dir_name(arch: str, preprocess: dict) -> str:
    """One folder per computation: the architecture (its name says QuickGELU) and the preprocessing."""
    canonical = json.dumps({k: preprocess.get(k) for k in PREPROCESS_FIELDS}, sort_keys=True)
    digest = hashlib.blake2b(canonical.encode(), digest_size=4).hexdigest()
    return "arch-" + re.sub(r"[^A-Za-z0-9._-]+", "_", arch) + "-" + digest


def search_path() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("CLIPDESK_ONNX_PATH", "").split(os.pathsep) if p]
    return [*extra, models_dir() / "onnx"]


def graph_metas() -> list[dict]:
    """Every exported graph's metadata (with its folder as ``dir``), first on the search path first."""
    found = []
    for root in search_path():
        if root.is_dir():
            for meta_file in sorted(root.glob(f"arch-*/{META}")):
                try:
                    meta = json.loads(meta_file.read_text())
                except (OSError, ValueError):
                    continue
                if "serves" in meta:  # graphs from before computations had their own folders are not used
                    found.append({**meta, "dir": str(meta_file.parent)})
    return found


def serves(spec: GraphSpec) -> str:
    """What a graph must serve to run ``spec``: its tag's preprocessing, or the architecture's defaults."""
    return f"tag:{spec.weights_tag}" if spec.weights_tag and not spec.random_init else "untagged"


def find_graph_dir(spec: GraphSpec) -> Path | None:
    want = serves(spec)
    for meta in graph_metas():
        if meta["arch"] == spec.arch and want in meta["serves"]:
            return Path(meta["dir"])
    return None


def available_archs() -> list[str]:
    """Architectures with an ONNX graph on the search path."""
    return sorted({meta["arch"] for meta in graph_metas()}, key=str.lower)


def weights_file(spec: GraphSpec, graph_dir: Path) -> Path | None:
    """The ``.safetensors`` state dict a spec brings to its graph, on disk or not; None for hub weights.

    Hub weights are wherever the models cache keeps them (``sources.cached_weights``).
    """
    if spec.random_init:
        return graph_dir / RANDOM_WEIGHTS
    if spec.checkpoint:
        path = Path(spec.checkpoint)
        # A .pt checkpoint needs torch to unpickle; export-onnx leaves a converted copy beside the graphs.
        return path if path.suffix == ".safetensors" else graph_dir / (path.stem + ".safetensors")
    return None
