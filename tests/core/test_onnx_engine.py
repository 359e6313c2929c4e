"""ONNX Runtime engine: same tokens and embeddings as the torch engine, weights swapped in at load."""

from __future__ import annotations

import numpy as np
import pytest

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
