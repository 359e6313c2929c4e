"""The caption evaluation harness, with answers known in advance."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from clipdesk.captions.eval import evaluate, find_data, load_set, score_captions, tokenize


@pytest.fixture(scope="module")
def coco():
    return load_set(find_data(), limit=12)


def test_a_reference_scores_high_and_a_constant_low(coco):
    refs = coco.references
    perfect = score_captions([r[0] for r in refs], refs)  # the one METEOR run (Java starts in seconds)
    constant = score_captions(["a man holding a red umbrella"] * len(refs), refs, meteor=False)
    assert perfect["bleu4"] > 0.9 and perfect["cider"] > 2 and constant["bleu4"] < 0.1 and constant["cider"] < 0.2
    if shutil.which("java"):
        assert perfect["meteor"] > 0.9
    else:
        assert perfect["meteor"] is None


def test_meteor_is_unavailable_without_java(coco, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _: None)
    assert score_captions(["a dog"], [["a dog", "the dog"]])["meteor"] is None


def test_tokenize_drops_case_and_punctuation():
    assert tokenize("A Dog's toy, on the grass.") == "a dog's toy on the grass"


class _RefCaptioner:
    """Candidates: a wrong caption first, the photo's own reference second."""

    model_key = "fake:refs"

    def __init__(self, refs_by_path):
        self.refs = refs_by_path

    def candidates(self, items, n):
        return [["an empty parking lot at night", self.refs[it.path][0]] for it in items]


class _Engine:
    """CLIP stand-in: the image and its references share a direction; anything else is orthogonal."""

    key = "fake:clip"

    def __init__(self, coco):
        self.index = {str(p): i for i, p in enumerate(coco.files)}
        self.ref_of = {r[0]: i for i, r in enumerate(coco.references)}
        self.dim = len(coco.files) + 1

    def encode_files(self, paths):
        return np.eye(self.dim, dtype=np.float32)[[self.index[p] for p in paths]]

    def encode_text(self, texts):
        return np.eye(self.dim, dtype=np.float32)[[self.ref_of.get(t, self.dim - 1) for t in texts]]


def test_reranking_picks_the_reference_and_clipscore_follows(coco):
    cap = _RefCaptioner({str(p): r for p, r in zip(coco.files, coco.references, strict=True)})
    result = evaluate(cap, _Engine(coco), coco, n=2, batch_size=5, meteor=False)
    assert result["photos"] == 12
    assert result["reranked"]["bleu4"] > 0.9 and result["unranked"]["bleu4"] < 0.1
    assert result["reranked"]["clipscore"] == pytest.approx(2.5) and result["unranked"]["clipscore"] == 0.0
