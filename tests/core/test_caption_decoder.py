"""The text-only caption decoder: split, training, checkpoints, decoding, reconstruction."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from clipdesk.captions import decoder_model
from clipdesk.captions.decoder import EmbeddingDecoderCaptioner, checkpoint_path
from clipdesk.captions.decoder_model import CheckpointError, project_to_memory
from clipdesk.captions.reconstruction import score, token_f1
from clipdesk.captions.textdata import Vocab, load_split
from clipdesk.captions.train import train
from clipdesk.jobs import CancelToken

# Small enough to train in seconds on a busy CPU, large enough that the decoder clearly
# learns to read the embedding (measured margins are about twice the asserted ones).
FAST = {"max_captions": 2000, "epochs": 12, "held_out": 120, "width": 64, "layers": 1, "batch_size": 32, "lr": 3e-3,
        "threads": 1}


@pytest.fixture(scope="module")
def trained(tiny_engine, shared_data, tmp_path_factory):
    lib = tmp_path_factory.mktemp("lib")
    result = train(tiny_engine, lib, data_dir=shared_data / "captions", **FAST)
    return lib, result


def test_split_is_by_image_and_leaves_coco_mini_out(shared_data):
    split = load_split(shared_data / "captions")
    assert set(split.train_images).isdisjoint(split.held_out_images)
    coco = json.loads((shared_data / "captions" / "coco_val2017_captions.json").read_text())
    flickr = json.loads((shared_data / "captions" / "flickr8k_captions.json").read_text())
    mini = {f"coco:{e['image_id']}" for e in coco if e["in_coco_mini"]}
    assert len(mini) == 159 and mini.isdisjoint(split.train_images) and mini.isdisjoint(split.held_out_images)
    flickr_test = {f"flickr8k:{e['file']}" for e in flickr if e["split"] == "test"}
    assert flickr_test <= set(split.held_out_images) and flickr_test.isdisjoint(split.train_images)
    # Every held-out image keeps all its captions, and capping training never reaches into them.
    by_image = dict(zip(split.held_out_images, split.held_out, strict=True))
    assert all(len(by_image[i]) == 5 for i in flickr_test)
    assert len(split.train_captions(1000)) == 1000 and len(split.held_out_captions(50)) == 50


def test_training_saves_safetensors_that_reload_identically(trained, tiny_engine):
    lib, result = trained
    assert not result.cancelled and result.path == checkpoint_path(lib, tiny_engine.key)
    assert result.path.parent == lib / "models" / "captions"
    with open(result.path, "rb") as fh:  # safetensors: 8-byte header length, then a JSON header
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    assert {"memory", "emb_mean", "emb_std", "tok.weight"} <= set(header)
    side = json.loads(result.path.with_suffix(".json").read_text())
    assert side["model_key"] == tiny_engine.key and side["captions"] == FAST["max_captions"]
    assert list(lib.rglob("*.tmp")) == []

    captioner = EmbeddingDecoderCaptioner.load(result.path, device="cpu")
    assert captioner.model_key == tiny_engine.key and captioner.version.startswith("decoder-v1-")
    examples = result.held_out["examples"]  # decoded by the trained model before it was saved
    vecs = tiny_engine.encode_text([e["reference"] for e in examples])
    assert [c[0] for c in captioner.caption_embeddings(vecs, n=1, project=False)] == [e["decoded"] for e in examples]
    assert [c[0] for c in captioner.caption_embeddings(vecs, n=1)] == [e["projected"] for e in examples]


def test_loading_never_unpickles(trained, monkeypatch):
    _, result = trained

    def refuse(*_a, **_k):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    EmbeddingDecoderCaptioner.load(result.path, device="cpu")


def test_damaged_or_mismatched_checkpoint_is_refused(trained, tmp_path):
    _, result = trained
    copy = tmp_path / result.path.name
    copy.write_bytes(result.path.read_bytes()[:-16] + b"\0" * 16)
    copy.with_suffix(".json").write_text(result.path.with_suffix(".json").read_text())
    with pytest.raises(CheckpointError, match="do not match"):
        EmbeddingDecoderCaptioner.load(copy, device="cpu")
    with pytest.raises(CheckpointError, match="captions train"):
        EmbeddingDecoderCaptioner.load(tmp_path / "absent.safetensors", device="cpu")


def test_text_reconstruction_beats_the_most_frequent_caption(trained, tiny_engine, shared_data):
    _, result = trained
    scores = result.held_out
    assert scores["captions"] == FAST["held_out"]
    # Measured (training is seeded): F1 0.291 vs 0.197, BLEU-4 0.038 vs 0.003.
    assert scores["text"]["token_f1"] > scores["baseline"]["token_f1"] + 0.05
    assert scores["text"]["bleu4"] > 3 * scores["baseline"]["bleu4"]
    assert scores["text_projected"]["token_f1"] > scores["baseline"]["token_f1"]
    # The decoder reads the embedding, not just the caption style: each caption decoded
    # from another caption's vector scores clearly worse (measured F1 0.225).
    held = load_split(shared_data / "captions").held_out_captions(FAST["held_out"])
    captioner = EmbeddingDecoderCaptioner.load(result.path, device="cpu")
    vecs = np.roll(tiny_engine.encode_text(held), 7, axis=0)
    wrong = [c[0] for c in captioner.caption_embeddings(vecs, n=1, project=False)]
    assert scores["text"]["token_f1"] > score(wrong, held)["token_f1"] + 0.03


def test_decoding_methods(trained, tiny_engine):
    _, result = trained
    captioner = EmbeddingDecoderCaptioner.load(result.path, device="cpu")
    vecs = tiny_engine.encode_text(["a dog runs on the grass", "a plate of food on a table", "two men play tennis"])
    beams = captioner.caption_embeddings(vecs, n=4, method="beam", max_len=6)
    assert len(beams) == 3 and all(len(c) == 4 and len(set(c)) == 4 for c in beams)
    assert all(len(t.split()) <= 6 for c in beams for t in c)
    greedy = captioner.caption_embeddings(vecs, n=4, method="greedy")
    assert all(len(c) == 1 for c in greedy)
    sampled = captioner.caption_embeddings(vecs, n=3, method="nucleus", seed=1)
    assert sampled == captioner.caption_embeddings(vecs, n=3, method="nucleus", seed=1)
    assert all(1 <= len(c) <= 3 for c in sampled)
    # Batching does not change the answer.
    assert captioner.caption_embeddings(vecs, n=2, batch_size=1) == captioner.caption_embeddings(vecs, n=2)
    with pytest.raises(ValueError):
        captioner.caption_embeddings(vecs, method="bogus")


def test_memory_projection_is_a_convex_combination():
    gen = torch.Generator().manual_seed(0)
    memory = torch.nn.functional.normalize(torch.randn(50, 16, generator=gen), dim=-1)
    queries = torch.nn.functional.normalize(torch.randn(7, 16, generator=gen), dim=-1)
    mixed, weights = project_to_memory(queries, memory, 0.1, return_weights=True)
    assert torch.all(weights >= 0) and torch.allclose(weights.sum(1), torch.ones(7))
    expected = weights @ memory
    assert torch.allclose(mixed, expected / expected.norm(dim=-1, keepdim=True), atol=1e-6)
    assert torch.allclose(mixed.norm(dim=-1), torch.ones(7), atol=1e-6)
    # A cold temperature snaps a memory row onto itself.
    assert torch.allclose(project_to_memory(memory[:3], memory, 1e-3), memory[:3], atol=1e-4)


def test_cancel_stops_cleanly_and_saves_nothing(tiny_engine, shared_data, tmp_path):
    token = CancelToken()
    seen = []

    def progress(p):
        seen.append(p.phase)
        if p.phase == "training" and p.done == 3:
            token.cancel()

    result = train(tiny_engine, tmp_path, data_dir=shared_data / "captions", progress=progress, cancel=token,
                   **(FAST | {"max_captions": 300, "held_out": 10}))
    assert result.cancelled and result.path is None
    assert seen.count("training") == 4  # stopped at the next batch
    assert not (tmp_path / "models").exists() and list(tmp_path.rglob("*.tmp")) == []


def test_checkpoint_paths_are_per_model(tmp_path):
    a, b = checkpoint_path(tmp_path, "open_clip:A:x"), checkpoint_path(tmp_path, "open_clip:A/x")
    assert a != b and a.suffix == ".safetensors" and f"v{decoder_model.FORMAT_VERSION}" in a.name


def test_vocab_and_token_f1():
    vocab = Vocab.build(["A dog.", "a dog runs", "A cat"], min_count=2)
    assert vocab.itos[4:] == ["a", "dog"]
    assert vocab.decode(vocab.encode("A dog jumps", 24)[1:]) == "a dog"
    assert token_f1("a dog runs", "A dog runs.") == 1.0 and token_f1("cat", "a dog") == 0.0
    assert np.isclose(token_f1("a dog", "a dog runs"), 0.8)


class _CountingEncoder:
    """Deterministic text vectors; counts what it is asked to encode."""

    key = "fake:counting"
    dim = 8

    def __init__(self) -> None:
        self.encoded = 0

    def encode_text(self, texts):
        self.encoded += len(texts)
        vecs = np.array([[len(t), t.count("a"), 1, 0, 0, 0, 0, 0] for t in texts], np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_caption_vectors_are_cached_in_chunks_and_resume(tmp_path, monkeypatch):
    from clipdesk.captions import train as train_mod

    monkeypatch.setattr(train_mod, "CHUNK", 4)
    texts = [f"caption {'a' * i}" for i in range(10)]
    enc, token = _CountingEncoder(), CancelToken()

    def stop_after_first_chunk(p):
        if p.done == 4:
            token.cancel()

    assert train_mod.encode_cached(enc, texts, tmp_path, stop_after_first_chunk, token) is None
    assert enc.encoded == 4
    full = train_mod.encode_cached(enc, texts, tmp_path)
    assert enc.encoded == 10  # the first chunk came from the cache
    assert np.array_equal(full, _CountingEncoder().encode_text(texts))
    assert np.array_equal(train_mod.encode_cached(enc, texts, tmp_path), full) and enc.encoded == 10


def test_scores_without_nltk_still_give_token_f1(monkeypatch):
    from clipdesk.captions import reconstruction

    monkeypatch.setattr(reconstruction, "have_bleu", lambda: False)  # as in the packaged app
    assert reconstruction.score(["a dog runs"], ["a dog runs"]) == {"bleu4": None, "token_f1": 1.0, "exact": 1.0}
