"""ONNX Runtime engine: same tokens and embeddings as the torch engine, weights swapped in at load."""

from __future__ import annotations

import numpy as np
import pytest
from _spread import write_spread_checkpoint

from clipdesk.engine.backend import backend_name, make_engine
from clipdesk.engine.clip import ClipEngine
from clipdesk.engine.onnx_engine import OnnxEngine
from clipdesk.engine.registry import TINY_ARCH, resolve
from clipdesk.errors import ModelNotAvailable

TEXTS = ["a dog on the beach", "Receipt!! 2023 — café's MENU &amp; tips", "naïve   façade\n\tx", "",
         "z" * 400, "日本の猫", "don't 3.14 #tag"]


@pytest.fixture(scope="module")
def onnx_root(tmp_path_factory):
    from clipdesk.engine.onnx_export import export_arch

    root = tmp_path_factory.mktemp("onnx")
    export_arch(TINY_ARCH, root, with_random_weights=True)
    return root


@pytest.fixture
def onnx_path(onnx_root, monkeypatch):
    monkeypatch.setenv("CLIPDESK_ONNX_PATH", str(onnx_root))
    return onnx_root


def _pixels(n=4, size=64):
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_tokenizer_matches_open_clip(onnx_path, tiny_engine):
    ours = OnnxEngine(resolve("tiny-random")).tokenize(TEXTS)
    assert (ours == tiny_engine._tokenizer(TEXTS).numpy()).all()  # noqa: SLF001
    assert ours[4, -1] == ours[0].max()  # a cut text still ends in EOT


@pytest.fixture(scope="module")
def spread_checkpoint(tmp_path_factory):
    return write_spread_checkpoint(tmp_path_factory.mktemp("spread"))


def _off_diagonal_max(v: np.ndarray) -> float:
    sims = v @ v.T
    return float(sims[~np.eye(len(v), dtype=bool)].max())


def test_embeddings_agree_with_torch_on_real_photos(onnx_path, spread_checkpoint, coco_images, shared_data):
    import json

    spec = resolve(f"{TINY_ARCH}:{spread_checkpoint}")
    ours, ref = OnnxEngine(spec, device="cpu", batch_size=5), ClipEngine(spec, device="cpu", batch_size=7)
    photos = coco_images[:16]
    a, b = ours.encode_files(photos), ref.encode_files(photos)
    assert _off_diagonal_max(b) < 0.99  # control: different photos have different vectors here
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5)
    with pytest.raises(AssertionError):  # negative control: the comparison fails for the wrong photos
        np.testing.assert_allclose(a, b[np.roll(np.arange(len(b)), 1)], rtol=1e-3, atol=2e-5)
    entries = json.loads((shared_data / "coco_mini" / "captions.json").read_text())
    captions = [e["captions"][0] for e in entries[:16]]
    ta, tb = ours.encode_text(captions), ref.encode_text(captions)
    assert _off_diagonal_max(tb) < 0.99
    np.testing.assert_allclose(ta, tb, rtol=1e-3, atol=2e-5)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(ta, tb[::-1], rtol=1e-3, atol=2e-5)
    assert ours.key == ref.key  # the shared key is what this agreement allows


def test_tiny_random_embeddings_agree_with_torch(onnx_path, tiny_engine):
    engine = OnnxEngine(resolve("tiny-random"), device="cpu", batch_size=3)
    assert engine.key == tiny_engine.key and engine.dim == tiny_engine.dim
    assert engine.input_spec() == tiny_engine.input_spec()
    text = (engine.encode_text(TEXTS) * tiny_engine.encode_text(TEXTS)).sum(1)
    image = (engine.encode_pixels(_pixels()) * tiny_engine.encode_pixels(_pixels())).sum(1)
    assert text.min() > 0.999 and image.min() > 0.999


def test_weights_come_from_the_checkpoint_not_the_graph(onnx_path, tmp_path):
    """Other weights over the same graph give that checkpoint's embeddings (what hub weights rely on)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(5)
    model = open_clip.create_model(TINY_ARCH, pretrained=None)
    ckpt = tmp_path / "seed5.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    spec = resolve(f"{TINY_ARCH}:{ckpt}")
    ours, ref = OnnxEngine(spec), ClipEngine(spec, device="cpu")
    assert ours.key == ref.key
    assert (ours.encode_text(TEXTS) * ref.encode_text(TEXTS)).sum(1).min() > 0.999
    assert (ours.encode_pixels(_pixels()) * ref.encode_pixels(_pixels())).sum(1).min() > 0.999
    seed0 = OnnxEngine(resolve("tiny-random")).encode_text(TEXTS[:1])
    assert float((seed0 * ours.encode_text(TEXTS[:1])).sum()) < 0.99


def test_missing_graph_and_weights_say_what_to_do(onnx_path, tmp_path, monkeypatch):
    with pytest.raises(ModelNotAvailable, match="export-onnx"):
        OnnxEngine(resolve("vit-b-32")).encode_text(["x"])
    spec = resolve(f"{TINY_ARCH}:{tmp_path / 'absent.safetensors'}")
    with pytest.raises(ModelNotAvailable, match="absent.safetensors"):
        OnnxEngine(spec).encode_text(["x"])


def test_backend_choice(monkeypatch):
    monkeypatch.setenv("CLIPDESK_ENGINE", "onnx")
    assert backend_name() == "onnx" and isinstance(make_engine(resolve("tiny-random")), OnnxEngine)
    monkeypatch.setenv("CLIPDESK_ENGINE", "torch")
    assert isinstance(make_engine(resolve("tiny-random")), ClipEngine)
    monkeypatch.delenv("CLIPDESK_ENGINE")
    assert backend_name() == "torch"  # installed here


def test_graphs_are_keyed_by_computation(tmp_path, monkeypatch, spread_checkpoint):
    """One folder per architecture + preprocessing: a SigLIP-style tag's graph is not the plain one."""
    import open_clip
    from open_clip import pretrained

    from clipdesk.engine.onnx_export import export_arch, export_spec

    monkeypatch.setitem(pretrained._PRETRAINED, TINY_ARCH, {"webli": {
        "url": "", "hf_hub": "timm/tiny-siglip-like/", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
        "interpolation": "bicubic", "resize_mode": "squash"}})
    root = tmp_path / "onnx"
    plain = export_arch(TINY_ARCH, root)
    tagged = export_spec(resolve(f"{TINY_ARCH}/webli:{spread_checkpoint}"), root)
    assert plain != tagged
    monkeypatch.setenv("CLIPDESK_ONNX_PATH", str(root))
    spec = resolve(f"{TINY_ARCH}/webli:{spread_checkpoint}")
    engine = OnnxEngine(spec, device="cpu")
    assert engine.input_spec().squash  # the tag's resize, from the tag's graph
    assert tuple(engine._mean.ravel() / 255) == pytest.approx((0.5, 0.5, 0.5))  # noqa: SLF001
    pixels = _pixels()
    np.testing.assert_allclose(engine.encode_pixels(pixels), ClipEngine(spec, device="cpu").encode_pixels(pixels),
                               rtol=1e-3, atol=2e-5)
    untagged = OnnxEngine(resolve(f"{TINY_ARCH}:{spread_checkpoint}"), device="cpu")
    assert not untagged.input_spec().squash
    assert tuple(open_clip.OPENAI_DATASET_MEAN) == pytest.approx(tuple(untagged._mean.ravel() / 255))  # noqa: SLF001


def test_a_gelu_graph_does_not_serve_quick_gelu_tags():
    from clipdesk.engine.onnx_export import _preprocess, served_tags

    default = _preprocess({"size": 224, "mean": [0.48145466, 0.4578275, 0.40821073],
                           "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic",
                           "resize_mode": "shortest"}, {})
    gelu, quick = served_tags("ViT-B-32", default, default), served_tags("ViT-B-32-quickgelu", default, default)
    assert "openai" not in gelu and "laion2b_s34b_b79k" in gelu
    assert "openai" in quick and "laion2b_s34b_b79k" not in quick


def test_exporting_a_siglip_model_says_why_it_cannot(tmp_path, capsys):
    from clipdesk.cli import main

    assert main(["--model", "mcip-so400m", "models", "export-onnx", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipdesk: ViT-SO400M-14-SigLIP-384 cannot be exported to ONNX") and "\n" not in err
