"""Captions: reranking, the resumable library job, hand edits, the CoCa backend."""

from __future__ import annotations

import numpy as np
import pytest
from _vecdb import FakeEncoder, add_photos
from sqlalchemy import select, update

from clipdesk.captions.base import clean_caption
from clipdesk.captions.rerank import clip_score, rerank
from clipdesk.captions.run import caption_library
from clipdesk.captions.store import best_captions, photo_captions, set_user_caption
from clipdesk.errors import ModelNotAvailable
from clipdesk.jobs import CancelToken
from clipdesk.store.models import Caption, Embedding, utcnow

TEXTS = {"a dog": [1, 0, 0], "a cat": [0, 1, 0], "a car": [0, 0, 1], "a dog on grass": [0.9, 0.1, 0]}


class FakeCaptioner:
    """Proposes every known text, worst first: reranking must reorder them."""

    model_key = "fake:v1"

    def __init__(self):
        self.seen: list[int] = []

    def candidates(self, items, n):
        self.seen += [it.photo_id for it in items]
        return [["a car", "a cat", "a dog", "a dog on grass"][:n] for _ in items]


@pytest.fixture
def encoder():
    return FakeEncoder("m", {k: np.array(v, float) for k, v in TEXTS.items()})


def _photos(library, n=5):
    return add_photos(library, "m", [{"path": f"/p/{i}.jpg", "vector": [1, 0.05 * i, 0]} for i in range(n)])


def test_rerank_orders_by_cosine(encoder):
    ranked = rerank(np.array([[0, 1, 0], [1, 0, 0]], np.float32), [["a dog", "a cat"], ["a cat", "a dog"]],
                    encoder.encode_text)
    assert [r[0][0] for r in ranked] == ["a cat", "a dog"]
    assert ranked[0][0][1] == pytest.approx(1.0, abs=1e-3) and ranked[0][1][1] == pytest.approx(0.0, abs=1e-3)
    assert clip_score(0.3) == pytest.approx(0.75) and clip_score(-0.2) == 0.0


def test_clean_caption():
    assert clean_caption(" a dog  sitting on a couch . ") == "a dog sitting on a couch"
    assert clean_caption("a man , a dog .") == "a man, a dog"


def test_library_job_stores_the_best_candidate_with_its_score(library, encoder):
    ids = _photos(library, 3)
    report = caption_library(library, FakeCaptioner(), encoder, n=4, batch=2)
    assert (report.todo, report.captioned, report.failed) == (3, 3, 0)
    caps = photo_captions(library, ids[0])
    assert [(c.text, c.source, c.model_key) for c in caps] == [("a dog", "auto", "fake:v1")]
    assert caps[0].score == pytest.approx(1.0, abs=1e-2)


def test_job_resumes_after_cancel_and_skips_done_photos(library, encoder):
    ids = _photos(library, 5)
    token = CancelToken()
    first = FakeCaptioner()

    def stop_after_first_batch(p):
        if p.done:
            token.cancel()

    report = caption_library(library, first, encoder, batch=2, progress=stop_after_first_batch, cancel=token)
    assert report.cancelled and report.captioned == 2
    second = FakeCaptioner()
    report = caption_library(library, second, encoder, batch=2)
    assert second.seen == ids[2:] and report.captioned == 3
    third = FakeCaptioner()
    assert caption_library(library, third, encoder).todo == 0 and third.seen == []
    # A re-embedded photo (changed file) is captioned again.
    with library.session() as s, s.begin():
        s.execute(update(Embedding).where(Embedding.photo_id == ids[1]).values(created_at=utcnow()))
    fourth = FakeCaptioner()
    caption_library(library, fourth, encoder)
    assert fourth.seen == [ids[1]]


def test_selected_ids_only(library, encoder):
    ids = _photos(library, 4)
    cap = FakeCaptioner()
    caption_library(library, cap, encoder, photo_ids=[ids[3], ids[1]])
    assert sorted(cap.seen) == [ids[1], ids[3]]
    assert set(best_captions(library)) == {ids[1], ids[3]}


def test_user_caption_survives_recaptioning(library, encoder):
    ids = _photos(library, 2)
    set_user_caption(library, ids[0], "  Grandma's   dog  ")
    caption_library(library, FakeCaptioner(), encoder, force=True)
    caption_library(library, FakeCaptioner(), encoder, force=True)
    caps = photo_captions(library, ids[0])
    assert [(c.source, c.text) for c in caps] == [("user", "Grandma's dog"), ("auto", "a dog")]
    assert best_captions(library) == {ids[0]: "Grandma's dog", ids[1]: "a dog"}
    set_user_caption(library, ids[0], "")  # clearing it shows the automatic caption again
    assert best_captions(library)[ids[0]] == "a dog"
    with library.session() as s:
        assert s.scalar(select(Caption).where(Caption.source == "user")) is None


def test_unreadable_photo_is_counted_not_raised(library, encoder):
    _photos(library, 2)

    class Half(FakeCaptioner):
        def candidates(self, items, n):
            return [[] if i == 0 else ["a cat"] for i, _ in enumerate(items)]

    report = caption_library(library, Half(), encoder)
    assert (report.captioned, report.failed) == (1, 1)


# -- the CoCa backend, with the test-only tiny config --------------------------------


@pytest.fixture(scope="module")
def tiny_coca():
    from clipdesk.captions.coca import CocaCaptioner, resolve_caption_model

    cap = CocaCaptioner(resolve_caption_model("tiny-coca"), device="cpu", max_len=8)
    cap.load()
    return cap


def test_tiny_coca_generates_candidates_from_photo_files(tiny_coca, coco_images):
    from clipdesk.captions.base import PhotoItem

    items = [PhotoItem(i, str(p), np.zeros(4, np.float32)) for i, p in enumerate(coco_images[:2])]
    items.append(PhotoItem(9, "/nonexistent.jpg", np.zeros(4, np.float32)))
    beams = tiny_coca.candidates(items, 3)
    assert [len(g) for g in beams[:2]] == [3, 3] and beams[2] == []
    assert all(isinstance(t, str) and t and "<" not in t for g in beams for t in g)
    tiny_coca.method = "nucleus"
    try:
        sampled = tiny_coca.candidates(items[:1], 3)
    finally:
        tiny_coca.method = "beam"
    assert 1 <= len(sampled[0]) <= 3
    assert tiny_coca.model_key == "open_clip:clipdesk-tiny-coca:random-seed0"


def test_coca_loads_a_local_safetensors_checkpoint(tiny_coca, tmp_path):
    from safetensors.torch import save_file

    from clipdesk.captions.coca import CocaCaptioner, resolve_caption_model

    path = tmp_path / "coca.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_coca.load().state_dict().items()}, str(path))
    cap = CocaCaptioner(resolve_caption_model(f"clipdesk-tiny-coca:{path}"), device="cpu", max_len=6)
    pixels = np.zeros((1, 64, 64, 3), np.uint8)
    tiny_coca.max_len = 6
    assert cap.caption_pixels(pixels, 2) == tiny_coca.caption_pixels(pixels, 2)  # the same weights
    tiny_coca.max_len = 8
    assert cap.model_key.startswith("open_clip:clipdesk-tiny-coca:file-")


def test_tiny_coca_weights_are_finite_and_the_same_in_every_load():
    """open_clip leaves CoCa's text-decoder projection uninitialised (torch.empty); the test model fixes it."""
    import torch

    from clipdesk.captions.coca import CocaCaptioner, resolve_caption_model

    spec = resolve_caption_model("tiny-coca")
    first, second = (CocaCaptioner(spec, device="cpu").load() for _ in range(2))
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.isfinite(a).all() and torch.equal(a, b), name


def test_max_len_is_bounded_by_the_text_decoder(tiny_coca, coco_images):
    from clipdesk.captions import coca
    from clipdesk.captions.coca import CocaCaptioner, resolve_caption_model
    from clipdesk.errors import QueryError

    spec = resolve_caption_model("tiny-coca")
    for bad in (77, 200, 0):
        with pytest.raises(QueryError, match="between 1 and 76") as exc:
            CocaCaptioner(spec, device="cpu", max_len=bad)
        assert "\n" not in str(exc.value)
    import torch

    model = tiny_coca.load()
    pixels = torch.zeros(1, 3, 64, 64)
    with torch.inference_mode():
        _, embs = model._encode_image(pixels)  # noqa: SLF001
        seqs = coca._sample(model, embs, 2, 76, 0.9)  # a random model rarely ends early: the full 76 tokens
    assert max(len(s) for s in seqs[0]) == 76


def test_missing_coca_checkpoint_names_the_file(tmp_path):
    from clipdesk.captions.coca import CocaCaptioner, resolve_caption_model

    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelNotAvailable) as err:
        CocaCaptioner(resolve_caption_model(f"coca_ViT-B-32:{missing}")).load()
    assert str(missing) in str(err.value) and "--caption-model" in str(err.value)


def test_non_coca_model_is_refused():
    from clipdesk.captions.coca import resolve_caption_model
    from clipdesk.errors import ModelSpecError

    with pytest.raises(ModelSpecError):
        resolve_caption_model("tiny-random")


# -- the embedding-decoder backend (the decoder itself is tested in its own module) --------


class _FakeDecoder:
    model_key, version = "m", "decoder-v1-abc"

    def __init__(self):
        self.calls = []

    def caption_embeddings(self, embeddings, n=5, method="beam", max_len=24):
        self.calls.append((embeddings.shape, n, method, max_len))
        return [[f"caption {i} of {k}" for k in range(n)] for i in range(len(embeddings))]


def test_decoder_backend_feeds_stored_vectors_and_names_its_weights(library, encoder):
    from clipdesk.captions.backends import DecoderBackend

    ids = _photos(library, 3)
    fake = _FakeDecoder()
    backend = DecoderBackend(fake, method="nucleus", max_len=12)
    assert backend.model_key == "decoder-v1-abc@m"
    encoder.default = np.array([1.0, 0, 0])
    report = caption_library(library, backend, encoder, n=2, batch=2)
    assert report.captioned == 3 and fake.calls == [((2, 3), 2, "nucleus", 12), ((1, 3), 2, "nucleus", 12)]
    assert photo_captions(library, ids[2])[0].model_key == "decoder-v1-abc@m"


def test_missing_decoder_says_how_to_train_one(library, tiny_engine):
    from clipdesk.captions.backends import make_captioner

    with pytest.raises(ModelNotAvailable, match="clipdesk captions train") as err:
        make_captioner("decoder", library.root, tiny_engine)
    assert str(library.root / "models" / "captions") in str(err.value)


def test_captions_train_command_passes_options_and_reports(tmp_path, monkeypatch, capsys):
    import json

    import clipdesk.captions.train as train_module
    from clipdesk.cli import main
    from clipdesk.jobs import Progress

    seen = {}

    def fake_train(engine, library_dir, *, progress, cancel, **options):
        seen.update(options, key=engine.key, library=library_dir)
        progress(Progress("training", 1, 2))
        return train_module.TrainResult(path=tmp_path / "d.safetensors", model_key=engine.key, captions=10, epochs=1,
                                        held_out={"text": {"bleu4": 0.2}, "baseline": {"bleu4": 0.05}})

    monkeypatch.setattr(train_module, "train", fake_train)
    code = main(["--library", str(tmp_path / "lib"), "--model", "tiny-random", "captions", "train", "--epochs", "1",
                 "--max-captions", "0", "--json"])
    assert code == 0
    assert seen["epochs"] == 1 and seen["max_captions"] is None and seen["key"].startswith("open_clip:clipdesk-tiny")
    out = json.loads(capsys.readouterr().out)
    assert out["captions"] == 10 and out["held_out"]["text"]["bleu4"] == 0.2
