"""Known-answer proof of ``clipdesk.tuning``: a constructed space where the base is distorted and the answer is known.

The generator, independent of any model weights: each photo has a true
identity vector (photos of one of 10 "scenes" share a centre, so different
photos of a scene are close), and every edit (a view) adds a large nuisance
vector in a separate 16-d subspace (its kind's direction plus noise), so
in the base space a photo's edited copies sit farther from it than other
photos of its scene: near-duplicate retrieval fails. Texts are the
identity plus noise: text search works in the base space. Held-out edit
kinds have directions of their own in the nuisance subspace. Tuning must
learn to ignore the nuisance subspace from the training kinds, so that
held-out photos find their held-out-kind copies, and keep text search.
"""

from __future__ import annotations

import numpy as np
import pytest
from _tuning_space import DIM, KEY, CodedViews, GeneratedEngine, Generator
from _vecdb import add_photos
from sqlalchemy import func, select

from clipdesk.engine.base import InputSpec
from clipdesk.errors import QueryError
from clipdesk.jobs import CancelToken
from clipdesk.search import Searcher, Term, parse_text_query
from clipdesk.store.models import Caption, Embedding
from clipdesk.tuning import run, state
from clipdesk.tuning.active import TunedEngine, unwrap, wrap_engine
from clipdesk.tuning.heads import Head
from clipdesk.tuning.manage import revert, tuning_status
from clipdesk.tuning.train import ImageSettings
from clipdesk.tuning.views import HELDOUT_KINDS

N = 600


@pytest.fixture
def generated(library):
    gen = Generator(N)
    ids = add_photos(library, KEY, [{"path": f"/gen/p{i}.jpg", "vector": gen.original(i)} for i in range(N)])
    assert ids == list(range(1, N + 1))
    with library.session() as s, s.begin():
        for i, pid in enumerate(ids):
            s.add(Caption(photo_id=pid, text=f"photo {i} by hand", source="user"))
            s.add(Caption(photo_id=pid, text=f"photo {i} automatic", source="auto"))
    return library, GeneratedEngine(gen)


def _searches(library, engine) -> list:
    """A few text and similar-photo searches, as (id, score) lists: what 'identical results' compares."""
    searcher = Searcher(library, wrap_engine(library, engine), hnsw_min_size=10**9, cutoff=False)
    out = []
    for terms in ([*parse_text_query("photo 5 by hand")], [Term("photo", 7)], [Term("photo", 300)]):
        out.append([(h.photo_id, round(h.score, 6)) for h in searcher.search(terms, k=10).hits])
    return out


def _counts(library) -> dict[str, int]:
    with library.session() as s:
        return dict(s.execute(select(Embedding.model_key, func.count()).group_by(Embedding.model_key)).all())


def test_tuning_recovers_identity_keeps_text_and_reverts_exactly(generated, capsys):
    library, engine = generated
    before_search = _searches(library, engine)
    report = run.tune(library, engine, run.TuneOptions(photos=256), views=CodedViews())
    with capsys.disabled():
        print(f"\nknown answer: near-dup {report.before['near_duplicates']} -> {report.after['near_duplicates']}; "
              f"text {report.before['heldout_captions']} -> {report.after['heldout_captions']}")
    near_b, near_a = report.before["near_duplicates"]["mAP@100"], report.after["near_duplicates"]["mAP@100"]
    assert near_b < 0.3 and near_a > 0.8  # the held-out photos find their held-out-kind copies
    for k in (1, 5, 10):
        assert report.after["heldout_captions"][f"R@{k}"] >= report.before["heldout_captions"][f"R@{k}"] - 0.01
    assert report.kept and report.tuned_key.startswith(KEY + "+tuned-")
    assert report.sizes["training_photos"] + report.sizes["validation_photos"] == 256
    assert report.sizes["near_duplicate_clusters"] >= 10  # the planted near-copies
    assert engine.pixel_calls == 256 * 4 + 64 * 3  # views only: stored vectors are never re-encoded
    assert _counts(library) == {KEY: N, report.tuned_key: N}  # one vector per photo per identity

    tuned = wrap_engine(library, engine)
    assert isinstance(tuned, TunedEngine) and tuned.key == report.tuned_key and unwrap(tuned) is engine
    assert (tuned.dim, tuned.precision, tuned.batch_size, tuned.input_spec()) == (DIM, "fp32", 64, InputSpec(2, False))
    # Held-out-kind copies of photos, encoded through the wrapper, now find their photo first.
    def found(enc) -> float:
        searcher = Searcher(library, enc, hnsw_min_size=10**9, cutoff=False)
        copies = enc.encode_pixels(np.concatenate([CodedViews().render(i, "", [HELDOUT_KINDS[i % 4]], 99)
                                                   for i in range(100, 200)]))
        return float(np.mean([searcher.index.search(c, 1)[0][0] == i for c, i in zip(copies, range(100, 200), strict=True)]))

    rate_base, rate_tuned = found(engine), found(tuned)
    with capsys.disabled():
        print(f"copies finding their photo first: base {rate_base:.2f}, tuned {rate_tuned:.2f}")
    assert rate_tuned >= max(rate_base, 0.95)
    assert _searches(library, engine) != before_search
    status = tuning_status(library)
    assert status["active"] and status["tuned_vectors"] == N and status["stale"] == 0
    assert (library.root / "models" / "tuning" / f"{status['digest']}.safetensors").is_file()

    reverted = revert(library)
    assert reverted == {"reverted": True, "base_key": KEY, "removed_vectors": N, "without_base_vectors": 0}
    assert _counts(library) == {KEY: N}
    assert wrap_engine(library, engine) is engine
    assert _searches(library, engine) == before_search  # exactly the base results again
    assert not list((library.root / "models" / "tuning").glob("*"))


def test_guard_rolls_back_a_head_that_hurts(generated, monkeypatch):
    """Control: a sabotaged image head (large random weights) must be refused, with its numbers."""
    library, engine = generated
    before_search = _searches(library, engine)
    rng = np.random.default_rng(1)

    def sabotaged(x, *args, **kwargs):
        return Head(rng.normal(size=(DIM, DIM)).astype(np.float32), np.zeros(DIM, np.float32),
                    (3 * rng.normal(size=(DIM, DIM))).astype(np.float32)), ImageSettings(), 1.0

    monkeypatch.setattr(run, "select_image_head", sabotaged)
    report = run.tune(library, engine, run.TuneOptions(photos=256, epochs=3), views=CodedViews())
    assert not report.kept and not report.cancelled
    assert report.after["near_duplicates"]["mAP@100"] < report.before["near_duplicates"]["mAP@100"]
    assert any("did not rise" in r and f"{report.before['near_duplicates']['mAP@100']:.3f}" in r
               for r in report.reasons)
    assert _counts(library) == {KEY: N}
    assert state.get_state(library, state.ACTIVE_META) is None and not list(state.heads_dir(library).glob("*"))
    assert state.get_state(library, state.LAST_META)["outcome"] == "rolled back"
    assert _searches(library, engine) == before_search


def test_cancel_while_writing_resumes_and_cancel_while_training_restarts(generated, monkeypatch):
    library, engine = generated
    token = CancelToken()
    monkeypatch.setattr(state, "WRITE_BATCH", 100)

    def stop_in(phase):
        return lambda p: token.cancel() if p.phase == phase and p.done else None

    stopped = run.tune(library, engine, run.TuneOptions(photos=256), views=CodedViews(), progress=stop_in("image head"),
                       cancel=token)
    assert stopped.cancelled and _counts(library) == {KEY: N} and not list(state.heads_dir(library).glob("*"))
    token = CancelToken()
    stopped = run.tune(library, engine, run.TuneOptions(photos=256), views=CodedViews(),
                       progress=stop_in("writing tuned vectors"), cancel=token)
    assert stopped.cancelled and stopped.tuned_key and 0 < stopped.written < N
    assert wrap_engine(library, engine) is engine  # the base is still what searches use
    assert state.get_state(library, state.PENDING_META)["key"] == stopped.tuned_key
    calls = engine.pixel_calls
    resumed = run.tune(library, engine, run.TuneOptions(photos=256), views=CodedViews())
    assert resumed.resumed and resumed.kept and resumed.tuned_key == stopped.tuned_key
    assert engine.pixel_calls == calls  # nothing encoded or trained again: the checked heads are written on
    assert resumed.written == N - stopped.written and _counts(library) == {KEY: N, stopped.tuned_key: N}
    assert wrap_engine(library, engine).key == stopped.tuned_key


def test_too_few_photos_is_a_clear_error(library):
    gen = Generator(10)
    add_photos(library, KEY, [{"path": f"/gen/p{i}.jpg", "vector": gen.original(i)} for i in range(10)])
    with pytest.raises(QueryError, match="at least 20 photos"):
        run.tune(library, GeneratedEngine(gen), views=CodedViews())
