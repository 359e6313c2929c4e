"""The pieces of ``clipdesk.tuning`` with answers worked out by hand: heads, clusters, pseudo-captions, the guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _vecdb import add_photos
from sqlalchemy import delete, select

from clipdesk.store.models import Caption, Embedding, Label
from clipdesk.tuning import state
from clipdesk.tuning.active import TunedEngine, wrap_engine
from clipdesk.tuning.guard import judge
from clipdesk.tuning.heads import Head, Heads, is_tuned_key, load_heads, save_heads
from clipdesk.tuning.pseudo import near_duplicate_clusters, pseudo_captions, split_rows, text_pairs


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _heads(dim=8, seed=0, base_key="m") -> Heads:
    rng = np.random.default_rng(seed)
    image = Head(rng.normal(size=(16, dim)).astype(np.float32), rng.normal(size=16).astype(np.float32),
                 (0.3 * rng.normal(size=(dim, 16))).astype(np.float32))
    return Heads(image, Head.identity(dim, 16), base_key)


def test_untrained_head_is_the_identity_and_numpy_matches_torch():
    x = _unit(np.random.default_rng(0).normal(size=(5, 8)))
    np.testing.assert_allclose(Head.identity(8, 16).apply(x), x, atol=1e-6)
    torch = pytest.importorskip("torch")
    head = _heads().image
    w1, b1, w2 = (torch.from_numpy(a) for a in (head.w1, head.b1, head.w2))
    t = torch.from_numpy(x)
    expected = torch.nn.functional.normalize(t + torch.nn.functional.gelu(t @ w1.T + b1, approximate="tanh") @ w2.T,
                                             dim=-1).numpy()
    np.testing.assert_allclose(head.apply(x), expected, atol=1e-5)  # training's head is the one search applies


def test_heads_round_trip_and_digest_names_the_weights(tmp_path):
    heads = _heads()
    path = save_heads(heads, tmp_path, {"created": "now", "sizes": {"photos": 3}})
    again = load_heads(path)
    assert again.digest == heads.digest and again.base_key == "m" and path.stem == heads.digest
    assert heads.tuned_key == f"m+tuned-{heads.digest}" and is_tuned_key(heads.tuned_key) and not is_tuned_key("m")
    assert json.loads(path.with_suffix(".json").read_text())["sizes"] == {"photos": 3}
    assert _heads(seed=1).digest != heads.digest and _heads(base_key="other").digest != heads.digest
    path.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a heads file"):
        load_heads(path)
    with pytest.raises(FileNotFoundError):
        load_heads(tmp_path / "missing.safetensors")
    from safetensors.numpy import save_file

    good = {f"{side}.{part}": a for side, h in (("image", _heads().image), ("text", _heads().text))
            for part, a in (("w1", h.w1), ("b1", h.b1), ("w2", h.w2))}
    save_file({**good, "text.w2": np.zeros((8, 3), np.float32)}, str(path), metadata={"base_key": "m"})
    with pytest.raises(ValueError, match="text head's shapes"):
        load_heads(path)  # a damaged file is refused before any search multiplies by it
    save_file(good, str(path), metadata={"base_key": "m"})
    assert load_heads(path).digest == heads.digest  # control: the same tensors, well formed, load


class _Pixels:
    """A view source whose views are one pixel (the photo id): counts what was rendered."""

    train_kinds = heldout_kinds = ("flip",)

    def render(self, photo_id, path, kinds, seed):
        return np.full((len(kinds), 1, 1, 3), photo_id % 256, np.uint8)


class _SlowEngine:
    def __init__(self, seconds):
        self.seconds = seconds

    def encode_pixels(self, pixels):
        import time

        time.sleep(self.seconds)
        return _unit(np.random.default_rng(0).normal(size=(len(pixels), 4)))


def test_view_encoding_stops_at_its_time_budget_but_not_before_the_minimum():
    from clipdesk.jobs import CancelToken
    from clipdesk.tuning.collect import ENCODE_CHUNK, encode_views

    photos = [(i, f"/p{i}") for i in range(10 * ENCODE_CHUNK)]
    views = encode_views(_SlowEngine(0.01), _Pixels(), photos, ("flip",), 1, 0, "views", lambda p: None, CancelToken(),
                         budget_s=0.0, at_least=3 * ENCODE_CHUNK)
    assert len(views.readable(len(photos))) == 3 * ENCODE_CHUNK and not views.unreadable
    assert views.unviewed == list(range(3 * ENCODE_CHUNK, len(photos))) and len(views.vectors) == 3 * ENCODE_CHUNK
    unlimited = encode_views(_SlowEngine(0.0), _Pixels(), photos, ("flip",), 1, 0, "views", lambda p: None,
                             CancelToken())
    assert len(unlimited.readable(len(photos))) == len(photos) and not unlimited.unviewed


def test_near_duplicate_clusters_are_mutual_neighbours_joined():
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(12, 32)))
    x[1] = _unit(x[0] + 0.05 * rng.normal(size=32))  # a pair
    x[5] = _unit(x[4] + 0.05 * rng.normal(size=32))  # a burst of three: 4-5 and 5-6 chain
    x[6] = _unit(x[5] + 0.05 * rng.normal(size=32))
    rows = np.arange(12)
    found = sorted(sorted(c.tolist()) for c in near_duplicate_clusters(x, rows, 0.95))
    assert found in ([[0, 1], [4, 5, 6]], [[0, 1], [4, 5]], [[0, 1], [5, 6]])  # mutual NN: 4-5-6 may split
    assert near_duplicate_clusters(x, rows, 0.9999) == []  # control: nothing that close
    assert near_duplicate_clusters(x, np.array([2, 3, 7]), 0.95) == []  # only the rows asked about


def test_pseudo_captions_from_captions_and_label_evidence(library):
    ids = add_photos(library, "m", [{"path": f"/p/{i}.jpg", "vector": [1, i, 0]} for i in range(3)])
    with library.session() as s, s.begin():
        s.add(Caption(photo_id=ids[0], text="a  dog on\na beach", source="auto"))
        s.add(Caption(photo_id=ids[0], text="Rex at the sea", source="user"))
        s.add(Label(photo_id=ids[0], label="dog", score=0.3, source="auto", status="proposed",
                    evidence=json.dumps([["a wagging tail", 0.33], ["fur", 0.3]])))
        s.add(Label(photo_id=ids[1], label="cat", score=0.2, source="user", status="accepted"))
        s.add(Label(photo_id=ids[2], label="car", score=0.4, source="auto", status="rejected",
                    evidence=json.dumps([["wheels", 0.4]])))
    got = pseudo_captions(library, ids)
    assert got == {ids[0]: ["Rex at the sea", "a dog on a beach", "a wagging tail", "fur"],
                   ids[1]: ["a photo of cat"]}  # rejected labels teach nothing
    pairs = text_pairs(got, {pid: row for row, pid in enumerate(ids)}, np.array([0, 1]), limit=10, seed=0)
    assert pairs.texts == got[ids[0]] + got[ids[1]] and pairs.pairs[:, 1].tolist() == [0, 0, 0, 0, 1]


def test_split_keeps_heldout_out_of_training():
    split = split_rows(100, 20, 50, seed=3)
    assert len(split.heldout) == 20 and len(split.train) == 50 and len(split.pool) == 80
    assert not set(split.heldout) & set(split.pool) and set(split.train) <= set(split.pool)


def _figures(near, **text):
    out = {"near_duplicates": {"n": 10, "mAP@100": near, "R@1": near}}
    out.update({name: {"n": 10, "R@1": r, "R@5": r, "R@10": r} for name, r in text.items()})
    return out


def test_guard_rules():
    keep, _ = judge(_figures(0.5, coco_mini=0.40), _figures(0.6, coco_mini=0.391))  # 0.9 points lower: allowed
    assert keep
    keep, reasons = judge(_figures(0.5, coco_mini=0.40), _figures(0.6, coco_mini=0.38))
    assert not keep and any("R@1 0.400 -> 0.380" in r for r in reasons)
    assert not judge(_figures(0.5, coco_mini=0.4), _figures(0.505, coco_mini=0.5))[0]  # a rise within noise
    keep, reasons = judge(_figures(0.5), _figures(0.9))  # nothing to check text search with
    assert not keep and any("could not be checked" in r for r in reasons)


class _Base:
    key, dim, precision, batch_size = "m", 8, "fp32", 4
    spec = "the base spec"

    def encode_text(self, texts):
        return _unit(np.ones((len(texts), 8)))

    def encode_pixels(self, pixels):
        return _unit(np.arange(1, 9, dtype=np.float32)[None].repeat(len(pixels), 0))

    def encode_files(self, paths):
        return self.encode_pixels(np.zeros(len(paths)))

    def input_spec(self):
        return "spec"


def test_wrap_engine_only_for_the_active_tuning_of_that_space(library):
    base = _Base()
    assert wrap_engine(library, base) is base  # nothing active
    heads = _heads()
    save_heads(heads, state.heads_dir(library), {})
    state.set_state(library, state.ACTIVE_META, state.state_of(heads))
    tuned = wrap_engine(library, base)
    assert isinstance(tuned, TunedEngine) and tuned.key == heads.tuned_key and tuned.spec == "the base spec"
    np.testing.assert_allclose(tuned.encode_pixels(np.zeros(2)), heads.image.apply(base.encode_pixels(np.zeros(2))))
    np.testing.assert_allclose(tuned.encode_text(["x"]), base.encode_text(["x"]), atol=1e-6)  # identity text head
    tuned.batch_size = 9
    assert base.batch_size == 9 and tuned.input_spec() == "spec"
    other = _Base()
    other.key = "another model"
    assert wrap_engine(library, other) is other  # heads of another space never apply
    state.heads_path(library, heads.digest).write_bytes(b"damaged")
    assert wrap_engine(library, base) is base  # heads unreadable: the base is searched, not a broken space
    state.heads_path(library, heads.digest).unlink()
    assert wrap_engine(library, base) is base


def test_refresh_derives_new_photos_and_a_revert_meanwhile_stops_it(library):
    from clipdesk.tuning.manage import refresh, revert

    rng = np.random.default_rng(4)
    add_photos(library, "m", [{"path": f"/p/{i}.jpg", "vector": rng.normal(size=8)} for i in range(30)])
    heads = _heads()
    base = _Base()
    base.key = "m"
    assert refresh(library, base) == 0  # nothing active: nothing derived
    save_heads(heads, state.heads_dir(library), {})
    state.set_state(library, state.ACTIVE_META, state.state_of(heads))
    assert refresh(library, base) == 30 and state.count_vectors(library, heads.tuned_key) == 30
    assert refresh(library, base) == 0  # current: nothing again
    with library.session() as s:
        rows = s.execute(select(Embedding.photo_id, Embedding.model_key, Embedding.vector)).all()
    stored = {(pid, key): np.frombuffer(v, "<f2").astype(np.float32) for pid, key, v in rows}
    for pid in range(1, 31):
        np.testing.assert_allclose(stored[pid, heads.tuned_key], heads.image.apply(stored[pid, "m"][None])[0],
                                   atol=2e-3)  # derived from the stored base vector, through the image head
    library.write(lambda s: s.execute(delete(Embedding).where(Embedding.model_key == heads.tuned_key)))

    def revert_after_first_batch(p):
        if p.done:
            revert(library)

    written, stopped = state.write_tuned(library, heads, revert_after_first_batch, batch=10)
    assert (written, stopped) == (10, True)  # the batch after the revert was not written
    assert state.count_vectors(library, heads.tuned_key) == 0 and state.count_vectors(library, "m") == 30
