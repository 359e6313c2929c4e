"""Labels learn from accept/reject: the probe decides taught labels in `label run`,
a re-run after new answers re-decides only those labels, and the review queue
puts the least certain decisions first. Constructed vectors, known answers.

Axes: 0 = truly a dog; 1 = a loud direction (e.g. "indoors") that the dog's
descriptors wrongly lean on; 2 = what every photo shares; 3 = cat; 7 = the
generic background prompts.
"""

from __future__ import annotations

import json

import numpy as np
from _vecdb import add_photos, unit
from sqlalchemy import select

from clipdesk.labels.feedback import set_feedback
from clipdesk.labels.review import review_queue
from clipdesk.labels.run import MIN_FEEDBACK, label_library
from clipdesk.labels.scoring import BACKGROUND_PROMPTS
from clipdesk.labels.vocab import LabelDef, Vocabulary
from clipdesk.store.models import Label

KEY = "fake:learning"
DIM = 8


def e(i, w=1.0):
    v = np.zeros(DIM)
    v[i] = w
    return v


DESCRIPTORS = {
    "a wagging tail": e(0, 0.6) + e(1, 0.8),  # the prior: partly the wrong way
    "a wet nose": e(0, 0.5) + e(1, 0.8),
    "pointed ears": e(3),
}


class Encoder:
    key = KEY

    def __init__(self):
        self.calls = 0

    def encode_text(self, texts):
        self.calls += 1
        out = []
        for t in texts:
            if t in BACKGROUND_PROMPTS:
                out.append(unit(e(7)))
            else:
                out.append(unit(next(v for d, v in DESCRIPTORS.items() if d in t)))
        return np.stack(out)

    def encode_images(self, *_):  # labelling must never re-embed
        raise AssertionError("re-embedding")


VOCAB = Vocabulary([LabelDef("dog", ("a wagging tail", "a wet nose")), LabelDef("cat", ("pointed ears",))])


def _photos(rng, n):
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.05, (n, DIM))
    x[:, 0] += np.where(y == 1, 0.25, -0.25)
    x[:, 1] += rng.normal(0, 0.4, n)
    x[:, 2] += 1.0
    x[:, 7] += 0.25  # the background prompts: a dog score must beat this
    return x, y


def _fill(library, n=120, seed=3):
    x, y = _photos(np.random.default_rng(seed), n)
    ids = add_photos(library, KEY, [{"path": f"/p/{i}.jpg", "vector": v} for i, v in enumerate(x)])
    return np.asarray(ids), y


def _dogs(library) -> dict[int, str]:
    with library.session() as s:
        return {r.photo_id: r.status for r in s.scalars(select(Label).where(Label.label == "dog"))}


def _accuracy(library, ids, y, rows) -> float:
    dogs = _dogs(library)
    said = np.array([dogs.get(int(ids[r])) in ("proposed", "accepted") for r in rows])
    return float(np.mean(said == (y[rows] == 1)))


def test_feedback_teaches_the_label_and_only_that_label_is_redecided(library):
    ids, y = _fill(library)
    held_out = np.arange(20, len(ids))
    first = label_library(library, Encoder(), VOCAB)
    assert first.learned == [] and first.relearned == []
    zero_shot = _accuracy(library, ids, y, held_out)
    assert zero_shot < 0.65, zero_shot  # the wrong-leaning prior: about a coin toss

    # Mark a cat proposal so we can see it is not rewritten by the dog's re-decision.
    with library.session() as s, s.begin():
        s.add(Label(photo_id=int(ids[-1]), label="cat", score=123.0, source="auto", status="proposed"))
    # The user answers truthfully on the first 20 photos ...
    train = np.arange(20)
    for r in train:
        set_feedback(library, int(ids[r]), "dog", accepted=bool(y[r]))
    # ... and disagrees with the truth on one held-out dog: that answer must stand.
    contrarian = int(ids[held_out[np.flatnonzero(y[held_out] == 1)[0]]])
    set_feedback(library, contrarian, "dog", accepted=False)

    enc = Encoder()
    second = label_library(library, enc, VOCAB)
    assert second.learned == ["dog"] and second.relearned == ["dog"]
    assert second.todo == 0  # no photo was new: only the taught label was re-decided
    assert enc.calls == 0  # descriptors from the cache; photos never re-embedded
    taught = _accuracy(library, ids, y, held_out)
    assert taught > 0.8 and taught > zero_shot + 0.25, (zero_shot, taught)
    dogs = _dogs(library)
    assert dogs[contrarian] == "rejected"
    assert all(dogs[int(ids[r])] == ("accepted" if y[r] else "rejected") for r in train)
    with library.session() as s:
        cat = s.scalar(select(Label).where(Label.photo_id == int(ids[-1]), Label.label == "cat"))
        dog = s.scalar(select(Label).where(Label.label == "dog", Label.status == "proposed"))
    assert cat.score == 123.0  # the untaught label was left alone
    assert json.loads(dog.evidence)[0][0].startswith("learned from your feedback (")

    third = label_library(library, Encoder(), VOCAB)
    assert (third.relearned, third.proposed, third.removed) == ([], 0, 0)


def test_too_little_feedback_keeps_the_descriptors(library):
    ids, y = _fill(library, n=40)
    label_library(library, Encoder(), VOCAB)
    before = _dogs(library)
    positives = [int(i) for i in ids[y == 1][:MIN_FEEDBACK + 2]]
    negatives = [int(i) for i in ids[y == 0][:MIN_FEEDBACK - 1]]
    for pid in positives:
        set_feedback(library, pid, "dog", accepted=True)
    for pid in negatives:
        set_feedback(library, pid, "dog", accepted=False)
    report = label_library(library, Encoder(), VOCAB)
    assert report.learned == [] and report.relearned == []
    after = _dogs(library)
    assert {p: s for p, s in after.items() if p not in positives + negatives} == {
        p: s for p, s in before.items() if p not in positives + negatives}


def test_review_queue_is_most_uncertain_first_and_skips_decided(library):
    ids, _ = _fill(library, n=60)
    queue = review_queue(library, Encoder(), VOCAB, limit=15, z=0.5, chunk=7)  # low bar: some dogs fire; chunks merge
    assert len(queue) == 15
    distances = [abs(it.margin) for it in queue]
    assert distances == sorted(distances)
    # Nothing left out was closer to its boundary than the last one taken.
    full = review_queue(library, Encoder(), VOCAB, limit=1000, z=0.5)
    assert len(full) == 2 * len(ids)
    assert [(it.photo_id, it.label) for it in full[:15]] == [(it.photo_id, it.label) for it in queue]
    assert queue[0].path.startswith("/p/") and queue[0].evidence
    assert {it.proposed for it in full} == {True, False}  # both proposals and near misses
    first = queue[0]
    set_feedback(library, first.photo_id, first.label, accepted=False)
    again = review_queue(library, Encoder(), VOCAB, limit=15, z=0.5)
    assert (first.photo_id, first.label) not in {(it.photo_id, it.label) for it in again}
    only_cat = review_queue(library, Encoder(), VOCAB, limit=5, label="cat")
    assert {it.label for it in only_cat} == {"cat"}
