"""Accept/reject feedback and the prior-regularised label probe."""

from __future__ import annotations

import numpy as np
from _vecdb import add_photos
from sqlalchemy import select

from clipdesk.labels.feedback import LabelProbe, feedback_examples, set_feedback
from clipdesk.store.models import Label


def test_reject_is_kept_and_accept_keeps_source(library):
    ids = add_photos(library, "m", [{"path": f"/p/{i}.jpg", "vector": [1, i, 0]} for i in range(3)])
    with library.session() as s, s.begin():
        s.add(Label(photo_id=ids[0], label="dog", score=0.3, source="auto", status="proposed", model_key="m"))
        s.add(Label(photo_id=ids[1], label="dog", score=0.2, source="auto", status="proposed", model_key="m"))
    set_feedback(library, ids[0], "dog", accepted=True)
    set_feedback(library, ids[1], "Dog", accepted=False)
    set_feedback(library, ids[2], "dog", accepted=True)  # not proposed: a user label
    with library.session() as s:
        rows = {r.photo_id: (r.source, r.status, r.score) for r in s.scalars(select(Label))}
    assert rows[ids[0]] == ("auto", "accepted", 0.3)
    assert rows[ids[1]] == ("auto", "rejected", 0.2)  # the row stays: auto-labeling will not re-add it
    assert rows[ids[2]] == ("user", "accepted", None)
    assert feedback_examples(library, "dog") == ([ids[0], ids[2]], [ids[1]])


def average_precision(scores: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = y[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def _data(rng, n, dim=16):
    """Label = sign along e0; e1 is a loud direction unrelated to the label."""
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.05, (n, dim))
    x[:, 0] += np.where(y == 1, 0.25, -0.25)
    x[:, 1] += rng.normal(0, 0.4, n)
    x[:, 2] += 1.0  # the common component all CLIP image vectors share
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def test_a_few_examples_fix_a_slightly_wrong_prior():
    rng = np.random.default_rng(7)
    prior = np.zeros(16)
    prior[0], prior[1] = 0.6, 0.8  # points partly the wrong way (along the loud e1)
    train_x, train_y = _data(rng, 12)
    test_x, test_y = _data(rng, 400)
    probe = LabelProbe(prior)
    prior_scores = probe.score(test_x)
    probe.fit(train_x[train_y == 1], train_x[train_y == 0])
    probe_scores = probe.score(test_x)
    ap_prior, ap_probe = average_precision(prior_scores, test_y), average_precision(probe_scores, test_y)
    acc_probe = float(np.mean((probe_scores > 0.5) == test_y))
    assert ap_probe > ap_prior + 0.1, (ap_prior, ap_probe)
    assert acc_probe > 0.85, acc_probe
    # The pull toward the prior keeps the probe from forgetting it entirely.
    assert probe.w @ probe.prior > 0


def test_no_examples_leaves_the_prior():
    probe = LabelProbe(np.array([1.0, 0.0]))
    np.testing.assert_allclose(probe.score(np.array([[0.6, 0.8]])), [0.6])
