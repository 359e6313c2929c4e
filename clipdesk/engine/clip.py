"""The CLIP engine: lazy open_clip loading, batched normalised encoding."""

from __future__ import annotations

import logging
import os
import pickle
import re
import threading
from collections.abc import Callable, Sequence

import numpy as np

from clipdesk.engine.base import InputSpec
from clipdesk.engine.registry import PRECISIONS, ModelSpec, embedding_key, register_tiny
from clipdesk.engine.sources import HUB_SAFE_WEIGHTS, cached_weights, weight_source
from clipdesk.engine.weights import hub_reachable, offline_unless_reachable, prefetch_weights
from clipdesk.errors import ClipdeskError, ModelNotAvailable, ModelSpecError, PrecisionUnsupported
from clipdesk.paths import models_dir

log = logging.getLogger(__name__)


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


DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def pick_precision(requested: str, device: str) -> str:
    """``auto``: fp16 on CUDA (what the GPU is fast at), fp32 elsewhere (CPU and MPS)."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}")
    if requested != "auto":
        return requested
    return "fp16" if device.startswith("cuda") else "fp32"


class ClipEngine:
    """One model on one device at one precision. ``model`` loads on first use, thread-safely."""

    def __init__(self, spec: ModelSpec, device: str = "auto", batch_size: int = 32,
                 on_download: Callable[[int, int], None] | None = None, precision: str = "auto") -> None:
        """``on_download(done_bytes, total_bytes)`` reports a first-use weights download."""
        self.spec = spec
        self.on_download = on_download
        self.requested_device = device
        self.requested_precision = precision
        if precision == "int8":
            raise PrecisionUnsupported("--precision int8 runs on ONNX Runtime, not PyTorch: set CLIPDESK_ENGINE=onnx "
                                       "(after `clipdesk --model NAME models export-onnx`), or use --precision auto, "
                                       "fp32, fp16 or bf16.")
        pick_precision(precision, "cpu")  # a bad value fails here, not on the inference lane
        self.batch_size = batch_size
        self._lock = threading.Lock()
        # One batch at a time: indexing and searches from other threads take
        # turns per batch, so a search never waits for a whole indexing run.
        self._infer_lock = threading.Lock()
        self._model = None
        self._tokenizer = None
        self._precision: str | None = None
        self.device: str | None = None
        self._dtype = None
        self._dim = 0

    @property
    def precision(self) -> str:
        """fp32, fp16 or bf16: what the vectors are computed at (``auto`` resolved for this machine)."""
        if self._precision is None:
            self._precision = pick_precision(self.requested_precision, self.device or pick_device(self.requested_device))
        return self._precision

    @property
    def key(self) -> str:
        return embedding_key(self.spec, self.precision)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def dtype(self):
        """The torch dtype inputs are cast to: the requested precision, whatever the first parameter is."""
        self.model  # noqa: B018 - loads
        return self._dtype

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
        self.device = device
        precision = self.precision
        spec = self.spec
        cache_dir = str(models_dir())
        source = weight_source(spec)
        # open_clip's mixed fp16/bf16 (OpenAI's recipe: LayerNorms and a few parameters kept fp32) leaves CoCa's
        # attention-pool queries and text CLS embedding at fp32 in the middle of half-precision layers, and its
        # forward fails; CoCa runs entirely in the half type instead.
        oc_precision = f"pure_{precision}" if precision != "fp32" and _is_coca(spec.arch) else precision
        try:
            if source.kind == "random":
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)  # same weights in every process
                    model = open_clip.create_model(spec.arch, pretrained=None, precision=oc_precision, device=device)
                    for module in model.modules():
                        # open_clip 3.3 never initialises CoCa's text-decoder projection (torch.empty: whatever the
                        # memory held, NaN at times), and its init_parameters() is broken; the test model's must be
                        # finite and the same in every process.
                        if type(module).__name__ == "MultimodalTransformer" and module.text_projection is not None:
                            torch.nn.init.normal_(module.text_projection, std=module.width ** -0.5)
            elif source.kind == "config":  # hf-hub: / local-dir: names carry their own configuration
                with offline_unless_reachable():
                    model = open_clip.create_model(spec.arch, precision=oc_precision, device=device, cache_dir=cache_dir,
                                                   require_pretrained=True, weights_only=True)
            else:
                prefetch_weights(spec, self.on_download or (lambda done, total: None))
                path = cached_weights(spec)
                if path is None:
                    raise FileNotFoundError(spec.checkpoint or "weights")
                # The file with its tag's configuration: what open_clip does for a tag, and what it
                # does not do for a file (it would apply the OpenAI mean/std and centre crop).
                model = open_clip.create_model(spec.arch, pretrained=str(path), precision=oc_precision, device=device,
                                               force_preprocess_cfg=source.preprocess or None,
                                               require_pretrained=True, weights_only=True)
            if source.tokenizer_repo:
                from clipdesk.engine.hf_tokenizer import HubTokenizer

                text_cfg = (open_clip.get_model_config(spec.arch) or {}).get("text_cfg", {})
                kwargs = text_cfg.get("tokenizer_kwargs", {})
                if text_cfg.get("tokenizer_mode"):
                    raise ModelSpecError(f"{spec.arch}: tokenizer mode {text_cfg['tokenizer_mode']!r} is not supported.")
                # The files come from the models cache, fetched with the weights: offline after that.
                tokenizer = HubTokenizer(source.tokenizer_repo, context_length=int(text_cfg.get("context_length", 77)),
                                         clean=kwargs.get("clean", "whitespace"),
                                         strip_sep_token=bool(kwargs.get("strip_sep_token", False)),
                                         cache_dir=cache_dir)
            else:
                with offline_unless_reachable():
                    tokenizer = open_clip.get_tokenizer(spec.arch, cache_dir=cache_dir)
        except Exception as exc:  # noqa: BLE001 - every failure here becomes one clear message
            raise ModelNotAvailable(_missing_message(spec, exc, cache_dir)) from exc
        model.eval()
        self._tokenizer = tokenizer
        self._dtype = getattr(torch, DTYPE_NAMES[precision])
        pre = open_clip.get_model_preprocess_cfg(model)
        size = pre.get("size", 224)
        self.input = InputSpec(
            size=int(size if isinstance(size, int) else size[0]),
            squash=pre.get("resize_mode") == "squash",
        )
        self.preprocess = dict(pre)
        self._mean = torch.tensor(pre.get("mean", open_clip.OPENAI_DATASET_MEAN), device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(pre.get("std", open_clip.OPENAI_DATASET_STD), device=device).view(1, 3, 1, 1)
        try:  # every kernel both towers need, now rather than on the first photo
            self._dim = int(self._encode_text_now(["a photo"], model).shape[1])
            self._encode_pixels_now(np.zeros((1, self.input.size, self.input.size, 3), np.uint8), model)
        except (RuntimeError, NotImplementedError) as exc:
            raise _precision_error(exc, precision, device, spec) from exc
        self._model = model  # last: other threads see a model only once it has worked
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
        self.model  # noqa: B018 - loads
        with self._infer_lock:
            return self._encode_pixels_now(pixels)

    def _encode_pixels_now(self, pixels: np.ndarray, model=None) -> np.ndarray:
        import torch

        model = model if model is not None else self._model
        out = []
        with torch.inference_mode():
            for start in range(0, len(pixels), self.batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(pixels[start : start + self.batch_size]))
                x = chunk.to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
                # The requested precision, not the first parameter's: open_clip's low-precision
                # conversion leaves some parameters (positional embedding, logit scale) at fp32.
                x = ((x - self._mean) / self._std).to(self._dtype)
                out.append(self._normalise(model.encode_image(x)))
        return np.concatenate(out) if out else np.zeros((0, self._dim), np.float32)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        self.model  # noqa: B018 - loads
        with self._infer_lock:
            return self._encode_text_now(texts)

    def _encode_text_now(self, texts: Sequence[str], model=None) -> np.ndarray:
        import torch

        model = model if model is not None else self._model
        out = []
        with torch.inference_mode():
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


def _is_coca(arch: str) -> bool:
    import open_clip

    return "multimodal_cfg" in (open_clip.get_model_config(arch) or {})


def file_spec_text(spec: ModelSpec, path: str = f"/path/to/{HUB_SAFE_WEIGHTS}") -> str:
    """The ``--model`` text for ``spec``'s architecture over a local file (with its tag, which sets the preprocessing)."""
    arch = spec.arch if not spec.arch.startswith(("hf-hub:", "local-dir:")) else "ARCH"
    tag = spec.weights_tag
    return f"{arch}/{tag}:{path}" if tag else f"{arch}:{path}"


def _missing_message(spec: ModelSpec, exc: Exception, cache_dir: str) -> str:
    what = f"Model '{spec.name}' (open_clip architecture {spec.arch}"
    if spec.checkpoint:
        where = f"the checkpoint file {spec.checkpoint}"
        what += ", local checkpoint)" if not spec.url else ")"
        fix = (
            f"Put the file at {spec.checkpoint}"
            + (f" (it downloads from {spec.url}: clipdesk models download {spec.name})" if spec.url else "")
            + f", or pass --model {file_spec_text(spec, '/path/to/checkpoint')}."
        )
    else:
        where = f"the download cache {cache_dir}"
        what += f", weights '{spec.pretrained}')" if spec.pretrained else ")"
        fix = (
            "Connect to the internet once so clipdesk can download it, or use a file you already have: "
            f"--model {file_spec_text(spec)} (set CLIPDESK_MODELS to change the cache)."
        )
    if isinstance(exc, FileNotFoundError):
        reason = "file not found"
    elif isinstance(exc, pickle.UnpicklingError):
        reason = "refused to load it: the file holds more than plain weights (only safetensors or weights-only PyTorch files load)"
    elif isinstance(exc, ClipdeskError):
        reason = str(exc).rstrip(".")
    elif not spec.checkpoint and not hub_reachable():
        reason = "not downloaded yet, and the model hub cannot be reached"
    else:  # e.g. strict loading's "Error(s) in loading state_dict" with the keys on the following lines
        reason = " ".join(str(exc).split()) or type(exc).__name__
    return f"{what} is not available: looked in {where}; {reason[:300]}. {fix}"


_MISSING_KERNEL = re.compile(r"""["']?([\w:.]+)["']? not implemented for ["']?(Half|BFloat16)""")


def _precision_error(exc: BaseException, precision: str, device: str, spec: ModelSpec) -> ClipdeskError:
    """One line naming the kernel a device lacks at this precision (torch says it in its own words)."""
    import torch

    text = (str(exc).splitlines() or [type(exc).__name__])[0]
    found = _MISSING_KERNEL.search(text)
    if found is None:
        return ModelNotAvailable(f"Model '{spec.name}' failed on {device} at {precision}: {text[:200]}")
    return PrecisionUnsupported(
        f"--precision {precision} does not work on {device} with PyTorch {torch.__version__}: it has no "
        f"{found.group(2)} kernel for {found.group(1)}. Use --precision bf16 or fp32 there."
    )
