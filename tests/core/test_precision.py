"""Half precision: inputs cast to the requested type, every path works on CPU, its own embedding key."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from clipdesk.config import CoreConfig
from clipdesk.engine.clip import ClipEngine, pick_precision
from clipdesk.engine.registry import embedding_key, resolve
from clipdesk.errors import PrecisionUnsupported
from clipdesk.imageio import read_photo
from clipdesk.indexer import index
from clipdesk.search import Searcher, Term, parse_text_query

HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def fp32_engine():
    return ClipEngine(resolve("tiny-random"), device="cpu", precision="fp32")


def _pixels(engine, paths):
    size = engine.input_spec().size
    return np.stack([read_photo(p, size).pixels for p in paths])


def test_auto_is_fp16_on_cuda_and_fp32_elsewhere():
    assert pick_precision("auto", "cuda") == pick_precision("auto", "cuda:1") == "fp16"
    assert pick_precision("auto", "cpu") == pick_precision("auto", "mps") == "fp32"
    assert pick_precision("bf16", "cuda") == "bf16"
    with pytest.raises(ValueError):
        pick_precision("int8", "cpu")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_encodes_real_photos(precision, fp32_engine, coco_images):
    engine = ClipEngine(resolve("tiny-random"), device="cpu", precision=precision)
    model = engine.model
    # What crashed on CUDA: open_clip's conversion keeps the first parameter at fp32 while conv1 is half,
    # so taking the input type from the first parameter fed fp32 pixels to a half convolution.
    assert next(model.parameters()).dtype == torch.float32
    assert model.visual.conv1.weight.dtype == HALF[precision]
    assert engine.dtype == HALF[precision]
    photos = coco_images[:6]
    half = engine.encode_pixels(_pixels(engine, photos))
    full = fp32_engine.encode_pixels(_pixels(fp32_engine, photos))
    assert half.dtype == np.float32 and np.allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-5)
    agreement = (half * full).sum(1)
    assert agreement.min() > 0.99  # the same model, rounded
    text = engine.encode_text(["a dog on a beach", "a receipt"])
    assert text.shape == (2, engine.dim) and not np.allclose(text[0], text[1])
    assert engine.key == embedding_key(engine.spec, precision) == f"{fp32_engine.key}:{precision}"


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_index_and_search_at_half_precision(precision, library, tmp_path, coco_images):
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in coco_images[:8]:
        shutil.copy(p, folder / p.name)
    copy = folder / "copy_of_first.png"
    from PIL import Image

    Image.open(coco_images[0]).convert("RGB").resize((500, 375)).save(copy)
    engine = ClipEngine(resolve("tiny-random"), device="cpu", precision=precision, batch_size=4)
    report = index(library, [str(folder)], engine, CoreConfig(decode_workers=0, batch_size=4))
    assert (report.found, report.embedded, report.errors) == (9, 9, 0)
    from sqlalchemy import func, select

    from clipdesk.store.models import Embedding

    with library.session() as s:
        keys = dict(s.execute(select(Embedding.model_key, func.count()).group_by(Embedding.model_key)).all())
    assert keys == {engine.key: 9} and engine.key.endswith(f":{precision}")
    searcher = Searcher(library, engine, hnsw_min_size=10**9, cutoff=False)
    text = searcher.search(parse_text_query("a dog on a beach"), k=5)
    assert len(text.hits) == 5
    from clipdesk.store.queries import find_photo

    original = find_photo(library, str(folder / coco_images[0].name))
    similar = searcher.search([Term("photo", original)], k=2)
    assert similar.hits[0].path == str(copy)  # the resized re-encode is the nearest other photo
    by_file = searcher.search([Term("file", str(copy))], k=2)
    assert {h.path for h in by_file.hits} == {str(copy), str(folder / coco_images[0].name)}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_coca_captions_at_half_precision(precision, coco_images):
    from clipdesk.captions.coca import CocaCaptioner, resolve_caption_model

    captioner = CocaCaptioner(resolve_caption_model("tiny-coca"), device="cpu", precision=precision, max_len=12)
    model = captioner.load()
    assert next(model.parameters()).dtype == HALF[precision]
    size = captioner._engine.input_spec().size  # noqa: SLF001
    pixels = np.stack([read_photo(p, size).pixels for p in coco_images[:2]])
    out = captioner.caption_pixels(pixels, 3)
    assert len(out) == 2 and all(out)  # candidates for each photo, no dtype error on the way
    assert captioner.model_key.endswith(f":{precision}")


def test_a_missing_cpu_kernel_is_one_line_naming_it(monkeypatch):
    engine = ClipEngine(resolve("tiny-random"), device="cpu", precision="fp16")

    def no_kernel(self, texts, model=None):
        raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'\nmore detail')

    monkeypatch.setattr(ClipEngine, "_encode_text_now", no_kernel)
    with pytest.raises(PrecisionUnsupported) as exc:
        engine.model  # noqa: B018 - loading probes every kernel
    message = str(exc.value)
    assert "addmm_impl_cpu_" in message and "Half" in message and "--precision" in message and "\n" not in message
    assert not engine.loaded  # nothing half-loaded is left for the next call


def test_the_onnx_engine_refuses_half_precision():
    from clipdesk.engine.onnx_engine import OnnxEngine

    with pytest.raises(PrecisionUnsupported, match="fp32"):
        OnnxEngine(resolve("tiny-random"), precision="fp16")
    assert OnnxEngine(resolve("tiny-random"), precision="auto").key == resolve("tiny-random").key
