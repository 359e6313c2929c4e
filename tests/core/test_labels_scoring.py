"""Descriptor scoring, abstention and the library labelling run, on constructed vectors.

Axes: 0 = dog, 1 = cat, 7 = the generic background prompts. Each descriptor
also leans on its own axis (2..5) so the evidence order is known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _vecdb import add_photos, unit
from sqlalchemy import select

from clipdesk.jobs import CancelToken
from clipdesk.labels.run import label_counts, label_library
from clipdesk.labels.scoring import BACKGROUND_PROMPTS, DescriptorBank
from clipdesk.labels.vocab import LabelDef, Vocabulary
from clipdesk.store.models import Label

KEY = "fake:labels"
DIM = 8


def e(i, w=1.0):
    v = np.zeros(DIM, np.float32)
    v[i] = w
    return v


DESCRIPTORS = {
    "a wagging tail": e(0) + e(2, 0.5),
    "a snout with a wet nose": e(0) + e(3, 0.3),
    "whiskers and pointed ears": e(1) + e(4, 0.5),
    "a long thin tail": e(1) + e(5, 0.3),
    "stripes on the fur": e(1) + e(6, 0.5),
    "a pattern of stripes": e(6),  # no cat axis: fires on none of the photos here
}


class KeywordEncoder:
    """A text's vector is the vector of the descriptor it contains; background prompts sit on axis 7."""

    def __init__(self, key=KEY, descriptors=None):
        self.key = key
        self.descriptors = descriptors or DESCRIPTORS
        self.calls = 0
        self.texts: list[str] = []

    def encode_text(self, texts):
        self.calls += 1
        self.texts.extend(texts)
        out = []
        for t in texts:
            if t in BACKGROUND_PROMPTS:
                out.append(unit(e(7) + e(6, 0.05 * (len(t) % 3))))
                continue
            found = [v for d, v in self.descriptors.items() if d in t]
            assert len(found) == 1, t
            out.append(unit(found[0]))
        return np.stack(out)


def vocab(cat_descriptors=("whiskers and pointed ears", "a long thin tail")):
    return Vocabulary([
        LabelDef("dog", ("a wagging tail", "a snout with a wet nose")),
        LabelDef("cat", tuple(cat_descriptors)),
    ])


DOG = unit(e(0) + e(2, 0.4) + e(7, 0.3))
CAT = unit(e(1) + e(5, 0.4) + e(7, 0.3))
NOTHING = unit(e(7) + e(0, 0.1) + e(1, 0.1))


def test_dog_gets_dog_with_evidence_and_background_gets_none():
    bank = DescriptorBank(KeywordEncoder(), vocab())
    scores = bank.score(np.stack([DOG, CAT, NOTHING]))
    dog = scores.hits(0)
    assert [h.label for h in dog] == ["dog"]
    assert [d for d, _ in dog[0].evidence] == ["a wagging tail", "a snout with a wet nose"]
    assert dog[0].evidence[0][1] > dog[0].evidence[1][1]
    assert dog[0].score == pytest.approx(np.mean([s for _, s in dog[0].evidence]), abs=1e-5)
    cat = scores.hits(1)
    assert [h.label for h in cat] == ["cat"]
    assert cat[0].evidence[0][0] == "a long thin tail"
    assert scores.hits(2) == []  # the background prompts win: "none"


def test_margin_makes_labels_abstain():
    scores = DescriptorBank(KeywordEncoder(), vocab(), margin=0.0).score(DOG[None])
    gap = scores.scores[0, 0] - scores.background[0]
    assert gap > 0
    assert DescriptorBank(KeywordEncoder(), vocab(), margin=gap + 0.01).score(DOG[None]).hits(0) == []
    assert DescriptorBank(KeywordEncoder(), vocab(), margin=gap - 0.01).score(DOG[None]).hits(0)


def _library_vectors(n_dogs=3, n_other=40, seed=0):
    rng = np.random.default_rng(seed)
    # Weak dogs everywhere: they beat the background, but the library says they are ordinary.
    weak = [unit(e(0, 1.0) + e(7, 0.6) + rng.normal(0, 0.05, DIM)) for _ in range(n_other)]
    strong = [unit(e(0) + e(2, 0.5) + e(7, 0.1)) for _ in range(n_dogs)]
    return np.stack(strong + weak)


def test_library_threshold_keeps_only_outstanding_photos():
    bank = DescriptorBank(KeywordEncoder(), vocab(), z=3.0)
    vecs = _library_vectors()
    plain = bank.score(vecs)
    assert plain.fires[:, 0].sum() > 30  # background abstention alone labels the weak ones
    stats = bank.calibrate(vecs)
    assert stats is not None
    calibrated = bank.score(vecs, stats)
    assert calibrated.fires[:3, 0].all()
    assert not calibrated.fires[3:, 0].any()
    assert bank.calibrate(vecs[:10]) is None  # too few photos to judge


def test_descriptor_cache_is_reused_and_refreshed(tmp_path):
    enc = KeywordEncoder()
    first = DescriptorBank(enc, vocab(), tmp_path)
    assert enc.calls == 2  # descriptors + background prompts
    assert len(list(tmp_path.glob("labels-*.npz"))) == 1
    again = KeywordEncoder()
    second = DescriptorBank(again, vocab(), tmp_path)
    assert again.calls == 0
    np.testing.assert_allclose(first.descriptor_matrix, second.descriptor_matrix)
    changed = KeywordEncoder()
    DescriptorBank(changed, vocab(("whiskers and pointed ears", "stripes on the fur")), tmp_path)
    assert changed.calls == 2
    other_model = KeywordEncoder(key="fake:other")
    DescriptorBank(other_model, vocab(), tmp_path)
    assert other_model.calls == 2


def test_templates_are_averaged():
    enc = KeywordEncoder()
    bank = DescriptorBank(enc, vocab())
    assert bank.descriptor_matrix.shape == (4, DIM)
    assert any("a photo of a dog" in t and "a wagging tail" in t for t in enc.texts)
    np.testing.assert_allclose(np.linalg.norm(bank.descriptor_matrix, axis=1), 1, atol=1e-5)


# -- the library run --------------------------------------------------------------------


def _fill(library):
    items = [{"path": f"/p/dog{i}.jpg", "vector": DOG} for i in range(3)]
    items += [{"path": f"/p/cat{i}.jpg", "vector": CAT} for i in range(2)]
    items += [{"path": "/p/nothing.jpg", "vector": NOTHING}]
    return add_photos(library, KEY, items)


def _labels(library):
    with library.session() as s:
        return {(r.photo_id, r.label): (r.source, r.status) for r in s.scalars(select(Label))}


def test_run_writes_proposals_with_evidence(library):
    ids = _fill(library)
    report = label_library(library, KeywordEncoder(), vocab(), batch=2)
    assert (report.photos, report.labelled, report.with_labels, report.proposed) == (6, 6, 5, 5)
    rows = _labels(library)
    assert rows == {**{(i, "dog"): ("auto", "proposed") for i in ids[:3]},
                    **{(i, "cat"): ("auto", "proposed") for i in ids[3:5]}}
    with library.session() as s:
        row = s.scalar(select(Label).where(Label.photo_id == ids[0]))
    assert row.model_key == KEY and row.score > 0
    assert json.loads(row.evidence)[0][0] == "a wagging tail"
    counts = {c["label"]: c["photos"] for c in label_counts(library)}
    assert counts == {"dog": 3, "cat": 2}


def test_run_resumes_after_cancel_and_is_incremental(library):
    _fill(library)
    token = CancelToken()
    seen = []

    def progress(p):
        seen.append(p.done)
        if p.done >= 2:
            token.cancel()

    first = label_library(library, KeywordEncoder(), vocab(), progress, token, batch=2)
    assert first.cancelled and first.labelled == 2
    second = label_library(library, KeywordEncoder(), vocab(), batch=2)
    assert (second.todo, second.labelled, second.cancelled) == (4, 4, False)
    assert len(_labels(library)) == 5
    third = label_library(library, KeywordEncoder(), vocab())
    assert (third.todo, third.proposed) == (0, 0)
    add_photos(library, KEY, [{"path": "/p/new_dog.jpg", "vector": DOG}])
    fourth = label_library(library, KeywordEncoder(), vocab())
    assert (fourth.todo, fourth.proposed) == (1, 1)


def test_run_keeps_user_decisions_and_removes_stale_proposals(library):
    ids = _fill(library)
    label_library(library, KeywordEncoder(), vocab())
    with library.session() as s, s.begin():
        s.scalar(select(Label).where(Label.photo_id == ids[0], Label.label == "dog")).status = "rejected"
        s.scalar(select(Label).where(Label.photo_id == ids[1], Label.label == "dog")).status = "accepted"
        s.add(Label(photo_id=ids[5], label="cat", source="user", status="accepted"))
    # The cat's descriptors change so no photo fires "cat" any more: a new vocabulary hash.
    new_vocab = vocab(("a pattern of stripes",))
    report = label_library(library, KeywordEncoder(), new_vocab)
    assert report.todo == 6
    rows = _labels(library)
    assert rows[(ids[0], "dog")] == ("auto", "rejected")  # not re-proposed
    assert rows[(ids[1], "dog")] == ("auto", "accepted")
    assert rows[(ids[2], "dog")] == ("auto", "proposed")
    assert rows[(ids[5], "cat")] == ("user", "accepted")  # the user's own label stays
    assert (ids[3], "cat") not in rows and (ids[4], "cat") not in rows  # stale proposals gone
    assert report.removed == 2 and report.kept == 2


def test_run_relabels_a_reembedded_photo(library):
    from datetime import timedelta

    from clipdesk.store.models import Embedding

    ids = _fill(library)
    label_library(library, KeywordEncoder(), vocab())
    with library.session() as s, s.begin():
        emb = s.get(Embedding, (ids[0], KEY))
        emb.vector = CAT.astype("<f2").tobytes()  # the file changed: now a cat
        emb.created_at = emb.created_at + timedelta(seconds=5)
    report = label_library(library, KeywordEncoder(), vocab())
    assert (report.todo, report.removed, report.proposed) == (1, 1, 1)
    rows = _labels(library)
    assert (ids[0], "dog") not in rows and rows[(ids[0], "cat")] == ("auto", "proposed")


def test_old_descriptor_caches_are_pruned(tmp_path):
    import os

    from clipdesk.labels.scoring import CACHE_KEEP

    first = DescriptorBank(KeywordEncoder(), vocab(), tmp_path).cache_path(tmp_path)
    others = [DescriptorBank(KeywordEncoder(key=f"fake:{i}"), vocab(), tmp_path).cache_path(tmp_path)
              for i in range(CACHE_KEEP - 1)]
    for age, path in enumerate([first, *others]):
        os.utime(path, (1000 + age, 1000 + age))  # first is the oldest ...
    DescriptorBank(KeywordEncoder(), vocab(), tmp_path)  # ... but was just used again
    DescriptorBank(KeywordEncoder(key="fake:new"), vocab(), tmp_path)
    kept = set(tmp_path.glob("labels-*.npz"))
    assert len(kept) == CACHE_KEEP and first in kept and others[0] not in kept
