"""int8 on ONNX Runtime: its own key, vectors close to fp32, the quantized graph cached and remade when damaged."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _spread import write_spread_checkpoint

from clipdesk.cli import main
from clipdesk.engine import onnx_int8
from clipdesk.engine.clip import ClipEngine
from clipdesk.engine.onnx_engine import OnnxEngine
from clipdesk.engine.onnx_files import TEXT, VISUAL, find_graph_dir
from clipdesk.engine.registry import TINY_ARCH, embedding_key, resolve
from clipdesk.errors import PrecisionUnsupported

TINY = resolve("tiny-random")


@pytest.fixture(scope="module")
def onnx_root(tmp_path_factory):
    from clipdesk.engine.onnx_export import export_arch

    root = tmp_path_factory.mktemp("onnx")
    export_arch(TINY_ARCH, root, with_random_weights=True)
    return root


@pytest.fixture(autouse=True)
def onnx_path(onnx_root, monkeypatch):
    monkeypatch.setenv("CLIPDESK_ONNX_PATH", str(onnx_root))
    return onnx_root


@pytest.fixture(scope="module")
def spread_checkpoint(tmp_path_factory):
    return write_spread_checkpoint(tmp_path_factory.mktemp("spread"))


def _pixels(n=4, size=64):
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _int8_files(spec):
    graph_dir = find_graph_dir(spec)
    return [onnx_int8.int8_file(graph_dir, name, spec.key) for name in (VISUAL, TEXT)]


def test_int8_has_a_key_of_its_own():
    engine = OnnxEngine(TINY, precision="int8")
    assert engine.precision == "int8" and engine.key == embedding_key(TINY, "int8") == f"{TINY.key}:int8"
    assert len({embedding_key(TINY, p) for p in ("fp32", "fp16", "bf16", "int8")}) == 4
    assert OnnxEngine(TINY, precision="auto").key == TINY.key  # auto stays fp32


def _agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean cosine of matching rows, mean top-5 overlap of each row's nearest other rows)."""
    cos = float((a * b).sum(1).mean())

    def top(v):
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :5]

    overlap = float(np.mean([len(set(x) & set(y)) / 5 for x, y in zip(top(a), top(b), strict=True)]))
    return cos, overlap


def test_int8_vectors_agree_with_fp32_on_real_photos(spread_checkpoint, coco_images, shared_data):
    spec = resolve(f"{TINY_ARCH}:{spread_checkpoint}")
    fp32, int8 = OnnxEngine(spec, device="cpu"), OnnxEngine(spec, device="cpu", precision="int8")
    photos = coco_images[:48]
    a, b = int8.encode_files(photos), fp32.encode_files(photos)
    off = (b @ b.T)[~np.eye(len(b), dtype=bool)]
    assert off.mean() < 0.6  # control: the photos are far apart here, so agreeing says something
    # Measured (tiny x3 weights, 48 photos, AVX-512 VNNI): cosine mean 0.9997, top-5 overlap 0.97 (captions 0.9996,
    # 0.97); against shuffled rows 0.40 and 0.10. (Quantizing the attention projections too: 0.984 and 0.82.)
    cos, overlap = _agreement(a, b)
    assert cos > 0.995 and overlap > 0.85, (cos, overlap)
    shuffled = _agreement(a, b[np.random.default_rng(0).permutation(len(b))])
    assert shuffled[0] < 0.8 and shuffled[1] < 0.4  # negative control: the same check fails on the wrong rows
    captions = [e["captions"][0] for e in json.loads((shared_data / "coco_mini" / "captions.json").read_text())[:48]]
    ta, tb = int8.encode_text(captions), fp32.encode_text(captions)
    cos_t, overlap_t = _agreement(ta, tb)
    assert cos_t > 0.995 and overlap_t > 0.85, (cos_t, overlap_t)
    assert _agreement(ta, tb[::-1])[0] < 0.8
    assert not np.allclose(a, b, atol=1e-4)  # it is quantized: not the fp32 vectors under another name


def test_the_quantized_graph_is_cached_and_reused(monkeypatch):
    first = OnnxEngine(TINY, precision="int8")
    vectors = first.encode_pixels(_pixels())
    files = _int8_files(TINY)
    assert all(f.is_file() for f in files)
    assert not list(files[0].parent.glob("*.tmp"))  # written atomically: nothing left beside it
    stamps = [f.stat().st_mtime_ns for f in files]

    def no_quantizing(*args, **kwargs):
        raise AssertionError("quantized again")

    monkeypatch.setattr(onnx_int8, "quantize", no_quantizing)
    monkeypatch.setattr("safetensors.numpy.load_file", no_quantizing)  # a cached graph needs no fp32 weights
    second = OnnxEngine(TINY, precision="int8")
    np.testing.assert_array_equal(second.encode_pixels(_pixels()), vectors)
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_a_damaged_or_foreign_quantized_file_is_made_again(monkeypatch):
    vectors = OnnxEngine(TINY, precision="int8").encode_text(["a dog"])
    visual, text = _int8_files(TINY)
    data = text.read_bytes()
    text.write_bytes(data[: len(data) // 2])  # a partial file (a copy cut short, a full disk)
    np.testing.assert_array_equal(OnnxEngine(TINY, precision="int8").encode_text(["a dog"]), vectors)
    assert text.stat().st_size == len(data)
    visual.write_bytes(b"not a model")
    OnnxEngine(TINY, precision="int8").model  # noqa: B018
    assert visual.stat().st_size > 1000
    # A whole file made by another recipe (or from other weights) records so, and is not used.
    monkeypatch.setattr(onnx_int8, "RECIPE", "another-recipe")
    calls = []
    real = onnx_int8.quantize
    monkeypatch.setattr(onnx_int8, "quantize", lambda *a: calls.append(a[-1]) or real(*a))
    OnnxEngine(TINY, precision="int8").model  # noqa: B018
    assert len(calls) == 2 and all(c.startswith("another-recipe;") for c in calls)


def test_without_the_onnx_package_int8_says_what_to_do(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx fails, as in the bundle
    with pytest.raises(PrecisionUnsupported, match="pip install onnx") as exc:
        OnnxEngine(TINY, precision="int8").model  # noqa: B018
    assert "\n" not in str(exc.value)


def test_the_torch_engine_says_int8_is_onnx_only():
    with pytest.raises(PrecisionUnsupported) as exc:
        ClipEngine(TINY, device="cpu", precision="int8")
    assert "CLIPDESK_ENGINE=onnx" in str(exc.value) and "\n" not in str(exc.value)


def test_the_cli_indexes_and_searches_at_int8_on_onnx(monkeypatch, capsys, tmp_path, coco_images):
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in coco_images[:5]:
        shutil.copy(p, folder / p.name)
    library = tmp_path / "lib"
    base = ["--library", str(library), "--model", "tiny-random"]
    monkeypatch.setenv("CLIPDESK_ENGINE", "onnx")
    assert main([*base, "--precision", "int8", "index", str(folder), "--workers", "0", "--json"]) == 0
    capsys.readouterr()
    assert main([*base, "--precision", "int8", "search", "a dog", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) > 0
    assert main([*base, "search", "a dog"]) == 4  # fp32 has no vectors here: the message names int8
    err = capsys.readouterr().err
    assert "indexed at int8" in err and "--precision int8" in err
    monkeypatch.setenv("CLIPDESK_ENGINE", "torch")
    assert main([*base, "--precision", "int8", "search", "a dog"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipdesk: --precision int8 runs on ONNX Runtime") and "\n" not in err
