"""CLIP inference through ONNX Runtime: the engine of the packaged app, which ships without torch.

It has ``ClipEngine``'s interface and embedding space (same ``key``), so a
library indexed by either engine is searched by the other. Graphs come from
``clipdesk models export-onnx`` (``onnx_export.py``): one per architecture,
weightless, looked up in ``$CLIPDESK_ONNX_PATH`` then ``<models>/onnx``
(``onnx_files``). The weights are an open_clip ``.safetensors`` state dict:
the hub's file in the shared models cache, a local checkpoint, or the test
model's random init. ``--precision int8`` runs the same graphs quantized
once per model (``onnx_int8``), with vectors of their own (key ``…:int8``).
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from clipdesk.engine.base import InputSpec, onnx_providers
from clipdesk.engine.onnx_files import (
    META,
    TEXT,
    TOKENIZER,
    VISUAL,
    WEIGHT_PREFIX,
    find_graph_dir,
    search_path,
    serves,
    weights_file,
)
from clipdesk.engine.registry import ModelSpec, embedding_key
from clipdesk.engine.sources import cached_weights
from clipdesk.errors import ModelNotAvailable, PrecisionUnsupported
from clipdesk.paths import models_dir

log = logging.getLogger(__name__)


class OnnxEngine:
    """One model in ONNX Runtime; loads on first use, thread-safely, like ``ClipEngine``."""

    def __init__(self, spec: ModelSpec, device: str = "auto", batch_size: int = 32,
                 on_download: Callable[[int, int], None] | None = None, precision: str = "auto") -> None:
        if precision not in ("auto", "fp32", "int8"):
            # The graphs are fp32 (or int8 made from them); a half-precision key would claim vectors this
            # engine never computes.
            raise PrecisionUnsupported(f"--precision {precision} needs the PyTorch engine; this build runs "
                                       "models through ONNX Runtime at fp32 or int8 (use --precision auto, fp32 "
                                       "or int8).")
        self.spec = spec
        self.requested_device = device
        self.batch_size = batch_size
        self.on_download = on_download
        self.precision = "int8" if precision == "int8" else "fp32"  # auto: fp32, the torch engine's vectors
        self._lock = threading.Lock()
        self._infer_lock = threading.Lock()
        self._sessions: tuple | None = None
        self.device: str | None = None
        self._dim = 0

    @property
    def key(self) -> str:
        # fp32 through ONNX Runtime shares the torch fp32 key: tests/core/test_onnx_engine.py checks on real
        # photos that both engines give the same vectors. int8 vectors differ (tests/core/test_int8.py): own key.
        return embedding_key(self.spec, self.precision)

    @property
    def loaded(self) -> bool:
        return self._sessions is not None

    @property
    def model(self):
        if self._sessions is None:
            with self._lock:
                if self._sessions is None:
                    self._load()
        return self._sessions

    def _load(self) -> None:
        spec = self.spec
        graph_dir = find_graph_dir(spec)
        if graph_dir is None:
            raise ModelNotAvailable(
                f"Model '{spec.name}' (open_clip architecture {spec.arch}, {serves(spec).replace('tag:', 'weights ')}) "
                f"has no ONNX graph: looked in {', '.join(map(str, search_path()))}. This build runs models through "
                "ONNX Runtime; export the graph with `clipdesk --model NAME models export-onnx` on an install with "
                "torch.")
        meta = json.loads((graph_dir / META).read_text())
        weights = _weights(spec, graph_dir)
        if (weights is None or not weights.is_file()) and not spec.checkpoint and not spec.random_init:
            from clipdesk.engine.weights import prefetch_weights

            # Like the torch engine: fetch on first use when the hub answers (safetensors only, which it reads).
            prefetch_weights(spec, self.on_download or (lambda done, total: None))
            weights = _weights(spec, graph_dir)
        if weights is None or not weights.is_file():
            raise ModelNotAvailable(
                f"Model '{spec.name}' is not available: its .safetensors weights file ({weights or 'from the hub'}) "
                f"is not on disk in {models_dir()}. Download it once (Tools ▸ Model settings, or connect to the "
                "internet), or choose a local .safetensors checkpoint.")
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        providers, self.device, _why = onnx_providers(self.requested_device)
        if self.precision == "int8":
            from clipdesk.engine.onnx_int8 import int8_session

            loaded: list[dict] = []  # the fp32 weights, read only if a tower must be quantized

            def state() -> dict[str, np.ndarray]:
                if not loaded:
                    loaded.append(load_file(str(weights)))
                return loaded[0]

            sessions = {name: int8_session(graph_dir / name, meta["externals"][name], state, spec.key, providers)
                        for name in (VISUAL, TEXT)}
            del loaded
        else:
            state = load_file(str(weights))
            sessions = {name: _session(graph_dir / name, meta["externals"][name], state, providers)
                        for name in (VISUAL, TEXT)}
            del state
        self._tokenizer = Tokenizer.from_file(str(graph_dir / TOKENIZER))
        self._meta = meta
        self.input = InputSpec(size=int(meta["image_size"]), squash=bool(meta["squash"]))
        self._mean = np.asarray(meta["mean"], np.float32).reshape(1, 3, 1, 1) * 255.0
        self._std = np.asarray(meta["std"], np.float32).reshape(1, 3, 1, 1) * 255.0
        self._sessions = (sessions[VISUAL], sessions[TEXT])
        self._dim = int(self.encode_text(["a photo"]).shape[1])
        log.info("loaded %s with ONNX Runtime on %s (%s)", spec.label, self.device, self.precision)

    def input_spec(self) -> InputSpec:
        self.model  # noqa: B018 - loads
        return self.input

    @property
    def dim(self) -> int:
        self.model  # noqa: B018 - loads
        return self._dim

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Encode uint8 ``N x S x S x 3`` arrays; returns float32 unit vectors."""
        visual, _ = self.model
        out = []
        with self._infer_lock:
            for start in range(0, len(pixels), self.batch_size):
                x = pixels[start : start + self.batch_size].transpose(0, 3, 1, 2).astype(np.float32)
                x = (x - self._mean) / self._std
                out.append(_normalise(visual.run(None, {"pixels": x})[0]))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        _, text = self.model
        out = []
        with self._infer_lock:
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenize(texts[start : start + self.batch_size])
                out.append(_normalise(text.run(None, {"tokens": tokens})[0]))
        return np.concatenate(out)

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """open_clip's ``tokenize``: SOT, BPE ids, EOT, zero padding; too long is cut and ends in EOT."""
        self.model  # noqa: B018 - loads
        meta, n = self._meta, self._meta["context_length"]
        result = np.zeros((len(texts), n), np.int64)
        for row, enc in enumerate(self._tokenizer.encode_batch([_clean(t) for t in texts])):
            ids = [meta["sot"], *enc.ids, meta["eot"]][:n]
            ids[-1] = meta["eot"]
            result[row, : len(ids)] = ids
        return result

    def encode_files(self, paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """Encode image files outside the library (query images)."""
        from clipdesk.imageio import read_photo

        spec = self.input_spec()
        return self.encode_pixels(np.stack([read_photo(p, spec.size, spec.squash).pixels for p in paths]))


def _weights(spec: ModelSpec, graph_dir: Path) -> Path | None:
    """The ``.safetensors`` file holding ``spec``'s weights: beside the graph, the checkpoint, or the models cache."""
    return weights_file(spec, graph_dir) or cached_weights(spec)


def _session(graph: Path, externals: list[str], state: dict[str, np.ndarray], providers: list[str]):
    import onnxruntime as ort

    options = ort.SessionOptions()
    try:
        values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(state[n.removeprefix(WEIGHT_PREFIX)],
                                                                          np.float32)) for n in externals]
    except KeyError as exc:
        raise ModelNotAvailable(f"The weights file does not fit the {graph.parent.name} graph: no tensor {exc}.") from exc
    options.add_external_initializers(list(externals), values)
    session = ort.InferenceSession(graph.read_bytes(), options, providers=providers)
    session._clipdesk_values = values  # noqa: SLF001 - the OrtValues must outlive the session
    return session


def _clean(text: str) -> str:
    # open_clip's basic_clean; whitespace and case are the tokenizer's normaliser.
    import ftfy

    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
