"""Export open_clip towers to ONNX graphs that ``OnnxEngine`` runs without torch.

A graph is exported once per computation (architecture, which names the
activation, and preprocessing) and saved *without* its weights:
every parameter becomes an external initializer that the engine fills in at
load time from an ordinary open_clip ``.safetensors`` state dict (the hub's
``hub.HUB_SAFE_WEIGHTS`` file or a local checkpoint). So the torch-free app
downloads and verifies the same weights file as the torch app, and one
100-kB-to-1-MB graph serves every set of weights of that architecture.

Needs torch and open_clip (the development install, not the bundle).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

from clipdesk.engine.onnx_files import (
    META,
    PREPROCESS_FIELDS,
    RANDOM_WEIGHTS,
    TEXT,
    TOKENIZER,
    VISUAL,
    WEIGHT_PREFIX,
    graph_dir_name,
)
from clipdesk.engine.registry import PREPROCESS_KEYS, PRESETS, ModelSpec, preprocess_of, register_tiny
from clipdesk.errors import ModelSpecError

OPSET = 17


def export_spec(spec: ModelSpec, out_root: Path) -> Path:
    """The graph that runs ``spec``: its architecture with its tag's preprocessing."""
    tag = None if spec.random_init else spec.weights_tag
    return export_arch(spec.arch, out_root, tag=tag, with_random_weights=spec.random_init)


def export_arch(arch: str, out_root: Path, tag: str | None = None, with_random_weights: bool = False) -> Path:
    """Write ``visual.onnx``, ``text.onnx``, ``tokenizer.json`` and ``meta.json`` for ``arch``.

    ``tag`` chooses the preprocessing (that pretrained tag's; the
    architecture's defaults without one); ``meta.json`` lists every tag the
    graph serves, so the torch-free app finds it for any of them.
    ``with_random_weights`` also saves the seed-0 random init (what the
    ``tiny-random`` preset uses) so the test model runs without torch.
    """
    import open_clip
    import torch

    register_tiny()
    hf_tokenizer = ((open_clip.get_model_config(arch) or {}).get("text_cfg") or {}).get("hf_tokenizer_name")
    if hf_tokenizer:  # checked first: loading it would need the hub
        raise ModelSpecError(f"{arch} cannot be exported to ONNX: only models with the CLIP BPE tokenizer can (this "
                             f"one uses the {hf_tokenizer} tokenizer); it runs with PyTorch only.")
    tokenizer = open_clip.get_tokenizer(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same init as ClipEngine's random models
        model = open_clip.create_model(arch, pretrained=None, device="cpu").eval()
    pre = _preprocess(open_clip.get_model_preprocess_cfg(model), preprocess_of(ModelSpec(arch, arch, tag)) if tag else {})
    out = out_root / graph_dir_name(arch, pre)
    out.mkdir(parents=True, exist_ok=True)
    if with_random_weights:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / RANDOM_WEIGHTS))
    state_keys = set(model.state_dict())
    with torch.no_grad():
        # Distinct values everywhere: the exporter merges parameters that are
        # equal (fresh LayerNorms are all ones), and a merged name could not be
        # filled from the state dict.
        gen = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    size = int(pre["size"])
    towers = {
        VISUAL: (_Tower(model, "encode_image"), torch.zeros(2, 3, size, size), "pixels"),
        TEXT: (_Tower(model, "encode_text"), torch.zeros(2, model.context_length, dtype=torch.long), "tokens"),
    }
    externals = {}
    for name, (tower, example, input_name) in towers.items():
        graph, externals[name] = _export_weightless(tower, example, input_name, state_keys)
        (out / name).write_bytes(graph)
    (out / TOKENIZER).write_text(clip_tokenizer_json(tokenizer))
    default = _preprocess(open_clip.get_model_preprocess_cfg(model), {})
    served = served_tags(arch, pre, default)
    meta = {
        "arch": arch,
        "image_size": size,
        "squash": pre["resize_mode"] == "squash",
        "mean": pre["mean"],
        "std": pre["std"],
        "preprocess": pre,
        # What this graph computes vectors for: these tags' weights, and plain files when the preprocessing
        # is the architecture's own.
        "serves": [f"tag:{t}" for t in served] + (["untagged"] if pre == default else []),
        "tags": served,
        "context_length": int(model.context_length),
        "sot": tokenizer.sot_token_id,
        "eot": tokenizer.eot_token_id,
        "externals": externals,  # initializer names the engine fills from the weights file
    }
    (out / META).write_text(json.dumps(meta, indent=1))
    return out


def served_tags(arch: str, pre: dict, default: dict) -> dict[str, dict]:
    """The pretrained tags whose weights this graph computes correctly: same preprocessing, same activation.

    open_clip lists a QuickGELU tag under both ``ARCH`` and ``ARCH-quickgelu``; a GELU graph must not claim it.
    """
    import open_clip

    quick = bool((open_clip.get_model_config(arch) or {}).get("quick_gelu"))
    served = {}
    for tag in open_clip.list_pretrained_tags_by_model(arch):
        cfg = _jsonable(open_clip.get_pretrained_cfg(arch, tag))
        if bool(cfg.get("quick_gelu")) == quick and _preprocess(default, preprocess_of(ModelSpec(arch, arch, tag))) == pre:
            served[tag] = cfg
    return served


def _preprocess(model_cfg: dict, tag_pre: dict) -> dict:
    merged = {**{k: model_cfg.get(k) for k in PREPROCESS_FIELDS}, **{k: tag_pre[k] for k in PREPROCESS_KEYS if k in tag_pre}}
    size = merged["size"]
    merged["size"] = int(size if isinstance(size, int) else size[0])
    return _jsonable(merged)


def _jsonable(cfg: dict) -> dict:
    return json.loads(json.dumps(cfg))  # tuples become lists, so configs compare equal after a round trip


def export_presets(out_root: Path) -> list[Path]:
    """Graphs for every preset ONNX can run (the CLIP-tokenizer ones), the tiny one with weights."""
    done = []
    for spec in PRESETS.values():
        if spec.url:
            continue  # PyTorch files: the torch-free app could not read their weights
        try:
            done.append(export_spec(spec, out_root))
        except ModelSpecError:
            continue  # SigLIP-style towers: torch only
    return done


class _Tower:
    """A module calling one of the model's encoders, so each tower exports alone."""

    def __new__(cls, model, method: str):
        import torch

        class Tower(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.m = model

            def forward(self, x):
                return getattr(self.m, method)(x)

        return Tower()


def _export_weightless(module, example, input_name: str, state_keys: set[str]) -> tuple[bytes, list[str]]:
    import onnx
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter on purpose (it is deprecated): it names each initializer after its
        # parameter and needs no onnxscript; its tracer warnings are about shapes made dynamic below.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), buf, dynamo=False, opset_version=OPSET,
            # No folding: a folded weight (a transposed Linear) would no longer be a state-dict tensor.
            do_constant_folding=False,
            input_names=[input_name], output_names=["embedding"],
            dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}},
        )
    graph = onnx.load_from_string(buf.getvalue())
    names = []
    for init in graph.graph.initializer:
        key = init.name.removeprefix(WEIGHT_PREFIX)
        if key not in state_keys:
            continue  # a constant of the graph itself: keep its data
        # Marked external: the engine supplies it from the weights file at load time.
        init.ClearField("raw_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        entry = init.external_data.add()
        entry.key, entry.value = "location", "weights.safetensors"
        names.append(init.name)
    return graph.SerializeToString(), names


def clip_tokenizer_json(tokenizer) -> str:
    """open_clip's BPE as a Hugging Face ``tokenizers`` pipeline (the same steps as its CLIPConverter)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    vocab = dict(tokenizer.encoder)
    merges = [pair for pair, _ in sorted(tokenizer.bpe_ranks.items(), key=lambda kv: kv[1])]
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix="</w>",
                        fuse_unk=False, unk_token=None))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                             behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok.to_str()


def export_spec_weights(spec: ModelSpec, graph_dir: Path) -> Path | None:
    """For a ``.pt`` checkpoint, a ``.safetensors`` copy beside its graph that the torch-free engine can read."""
    if not spec.checkpoint or spec.checkpoint.endswith(".safetensors"):
        return None
    import torch
    from safetensors.torch import save_file

    state = torch.load(spec.checkpoint, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v.contiguous() for k, v in state.items() if hasattr(v, "contiguous")}
    target = graph_dir / (Path(spec.checkpoint).stem + ".safetensors")
    save_file(state, str(target))
    return target
