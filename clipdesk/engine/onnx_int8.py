"""int8 towers for ONNX Runtime: one model's fp32 graphs quantized once (dynamic, int8 weights) and cached.

The exported graphs are weightless and shared by every set of weights of an
architecture; a quantized graph carries its weights (as int8), so it belongs
to one model. It is made on first use of ``--precision int8`` from the
fp32 graph and the model's ``.safetensors`` state dict, and kept in
``<models>/onnx/<graph folder>/`` (beside the fp32 graph when that is where
the export went; the bundle's own graph folder is read-only). The file
records what it was made from (model key, graph, recipe); a file that does
not load or records something else is made again. Written atomically: a
kill leaves the old file or none.

Quantizing needs the ``onnx`` package; loading a cached file needs only
ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clipdesk.engine.onnx_files import WEIGHT_PREFIX
from clipdesk.errors import ModelNotAvailable, PrecisionUnsupported
from clipdesk.paths import models_dir

log = logging.getLogger(__name__)

# Bump RECIPE when the quantization changes: files made by another recipe are made again. (The vectors' key is
# ``…:int8`` whatever the recipe: a change that moves the vectors noticeably should also give int8 a new key.)
# Weights int8, symmetric, one scale per output channel; activations uint8, one scale per tensor computed at
# run time (so a photo's vector depends a little on the batch it is in). MatMul only: the Linears and the final
# projections; the patch Conv and the token table stay fp32 (ConvInteger was no faster, a lookup gains nothing).
# The attention projections (names with KEEP_FP32) stay fp32 too: quantizing them cost the most agreement.
# bench/cpu_engines.py, ViT-B-32 with random weights x2, 239 COCO photos, 2-core EPYC: every MatMul 2.74x the
# fp32 graph's images/s, mean cosine to fp32 0.909, image top-10 overlap 0.60; attention kept fp32 1.71x, 0.985,
# 0.84.
RECIPE = "dynamic-qint8-perchannel-mlp-v1"
OPS = ("MatMul",)
PER_CHANNEL = True
KEEP_FP32 = ("/attn/",)
META_KEY = "clipdesk_int8"


def int8_file(graph_dir: Path, tower: str, model_key: str) -> Path:
    """Where the int8 ``tower`` (``visual.onnx`` or ``text.onnx``) of the model ``model_key`` is cached."""
    return models_dir() / "onnx" / graph_dir.name / f"{Path(tower).stem}.int8-{_digest(model_key)}.onnx"


def identity(graph: Path, model_key: str) -> str:
    """What a cached file must have been made from: the model, the fp32 graph's bytes and the recipe."""
    graph_digest = hashlib.blake2b(graph.read_bytes(), digest_size=8).hexdigest()
    return f"{RECIPE};{model_key};graph-{graph_digest}"


def int8_session(graph: Path, externals: list[str], state: Callable[[], dict[str, np.ndarray]], model_key: str,
                 providers: list[str]):
    """An ONNX Runtime session of ``graph`` at int8 with ``model_key``'s weights, quantized now if not cached.

    ``state()`` gives the fp32 state dict; it is called only when the graph must be quantized.
    """
    import onnxruntime as ort

    path = int8_file(graph.parent, graph.name, model_key)
    want = identity(graph, model_key)
    if path.is_file():
        try:
            session = ort.InferenceSession(str(path), providers=providers)
            made_from = session.get_modelmeta().custom_metadata_map.get(META_KEY)
            if made_from == want:
                return session
            log.warning("int8 graph %s was made from %s, not %s: quantizing again", path, made_from, want)
        except Exception as exc:  # noqa: BLE001 - a damaged file of any kind is made again
            log.warning("int8 graph %s does not load (%s): quantizing again", path, str(exc).splitlines()[0][:200])
    quantize(graph, externals, state(), path, want)
    return ort.InferenceSession(str(path), providers=providers)


def quantize(graph: Path, externals: list[str], state: dict[str, np.ndarray], target: Path, made_from: str) -> None:
    """Write ``graph`` with ``state``'s weights, dynamically quantized to int8, to ``target`` (atomically)."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise PrecisionUnsupported(
            f"--precision int8 quantizes the model once on first use, and that needs the onnx package ({exc.name} "
            "is missing): pip install onnx, or use --precision fp32.") from exc
    log.info("quantizing %s to int8 (once; cached as %s)", graph.name, target)
    model = onnx.load_from_string(graph.read_bytes())
    _fill_weights(model, externals, state)
    _fold_weight_transposes(model)
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, made_from
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        keep = [node.name for node in model.graph.node if any(part in node.name for part in KEEP_FP32)]
        quantize_dynamic(model, tmp, op_types_to_quantize=list(OPS), per_channel=PER_CHANNEL, nodes_to_exclude=keep,
                         weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fill_weights(model, externals: list[str], state: dict[str, np.ndarray]) -> None:
    """The external initializers become ordinary ones holding ``state``'s tensors (quantization reads values)."""
    from onnx import TensorProto, numpy_helper

    wanted = set(externals)
    for init in model.graph.initializer:
        if init.name in wanted:
            key = init.name.removeprefix(WEIGHT_PREFIX)
            if key not in state:
                raise ModelNotAvailable(f"The weights file does not fit the graph: no tensor '{key}'.")
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(state[key], np.float32), init.name))
            init.data_location = TensorProto.DEFAULT


def _fold_weight_transposes(model) -> None:
    """Give every Linear's MatMul a constant weight, which is what dynamic quantization looks for.

    The export keeps weights as they are in the state dict (no constant folding), so a Linear is
    ``MatMul(x, Transpose(W))`` or ``Gemm(x, W, b, transB=1)``; ONNX Runtime quantizes neither (a
    Transpose output is not a constant; Gemm has no integer kernel). Both become ``MatMul(x, W.T)``
    with ``W.T`` an initializer (``+ b`` for Gemm).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    arrays: dict[str, np.ndarray] = {}

    def array(name: str) -> np.ndarray:
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(inits[name])
        return arrays[name]

    def add_init(name: str, value: np.ndarray) -> None:
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
        graph.initializer.append(tensor)
        inits[name] = tensor

    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Transpose" and node.input[0] in inits:
            perm = attrs.get("perm") or list(reversed(range(array(node.input[0]).ndim)))
            add_init(node.output[0], array(node.input[0]).transpose(perm))
            continue
        if node.op_type == "Gemm" and node.input[1] in inits and not attrs.get("transA", 0):
            weight = array(node.input[1])
            weight = (weight.T if attrs.get("transB", 0) else weight) * np.float32(attrs.get("alpha", 1.0))
            weight_name = f"{node.input[1]}.kn"
            if weight_name not in inits:
                add_init(weight_name, weight.astype(np.float32))
            has_bias = len(node.input) > 2 and node.input[2]
            product = f"{node.output[0]}.matmul" if has_bias else node.output[0]
            nodes.append(helper.make_node("MatMul", [node.input[0], weight_name], [product], name=f"{node.name}.matmul"))
            if has_bias:
                bias = node.input[2]
                beta = float(attrs.get("beta", 1.0))
                if beta != 1.0:
                    add_init(f"{bias}.beta", array(bias) * np.float32(beta))
                    bias = f"{bias}.beta"
                nodes.append(helper.make_node("Add", [product, bias], [node.output[0]], name=f"{node.name}.bias"))
            continue
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
