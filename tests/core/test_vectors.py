"""The HNSW graph is derived data: updated in place when stale, rebuilt when missing, corrupt or worn; the app's
searches never wait for it."""

from __future__ import annotations

import threading
from datetime import datetime

import numpy as np
import pytest
from _vecdb import add_photos
from sqlalchemy import update

from clipdesk.store import derived
from clipdesk.store import graph as graph_mod
from clipdesk.store.graph import SavedGraph
from clipdesk.store.models import Embedding, Photo, utcnow
from clipdesk.store.vectors import VectorIndex, load_vectors

KEY = "test:vectors"


@pytest.fixture
def filled(library):
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(5, 16))
    items = [{"path": f"/v/{i}.jpg", "vector": centres[i % 5] + 0.3 * rng.normal(size=16)} for i in range(200)]
    ids = add_photos(library, KEY, items)
    return ids


def _exact_top(library, query, k):
    exact = VectorIndex(library, KEY, hnsw_min_size=10**9)
    assert exact.mode == "exact"
    return exact.search(query, k)


def test_load_vectors_is_fp32_unit_rows(library, filled):
    vs = load_vectors(library, KEY)
    assert vs.matrix.dtype == np.float32 and vs.matrix.shape == (200, 16)
    np.testing.assert_allclose(np.linalg.norm(vs.matrix, axis=1), 1.0, atol=2e-3)
    assert list(vs.ids) == sorted(filled)


def test_hnsw_saved_and_reused(library, filled, monkeypatch):
    query = load_vectors(library, KEY).matrix[3]
    first = VectorIndex(library, KEY, hnsw_min_size=0)
    ids, scores = first.search(query, 10)
    exact_ids, exact_scores = _exact_top(library, query, 10)
    assert first.mode == "hnsw" and ids[0] == exact_ids[0] == filled[3]
    assert len(set(ids) & set(exact_ids)) >= 9
    assert len(list(library.vectors_dir.glob("*.hnsw"))) == 1
    monkeypatch.setattr(SavedGraph, "_build", lambda self, snap: pytest.fail("rebuilt a current index"))
    again = VectorIndex(library, KEY, hnsw_min_size=0)
    assert list(again.search(query, 10)[0]) == list(ids)


def _no_build(monkeypatch):
    monkeypatch.setattr(SavedGraph, "_build", lambda self, snap: pytest.fail("rebuilt instead of updating"))


def _first(index, vec) -> int:
    return int(index.search(np.asarray(vec, np.float32) / np.linalg.norm(vec), 1)[0][0])


def test_stale_graph_is_updated_in_place(library, filled, monkeypatch):
    VectorIndex(library, KEY, hnsw_min_size=0).hnsw()
    rng = np.random.default_rng(3)
    fresh = [rng.normal(size=16) * 3 for _ in range(5)]
    new_ids = add_photos(library, KEY, [{"path": f"/v/new{i}.jpg", "vector": v} for i, v in enumerate(fresh)])
    gone = filled[:3]
    moved = filled[10:12]
    turned = [-load_vectors(library, KEY).matrix[load_vectors(library, KEY).row_of(p)] for p in moved]
    with library.session() as s, s.begin():
        s.execute(update(Photo).where(Photo.id.in_(gone)).values(missing_since=datetime(2024, 1, 1)))
        for pid, vec in zip(moved, turned, strict=True):  # embedded again (a changed file): a new vector
            s.execute(update(Embedding).where(Embedding.photo_id == pid)
                      .values(vector=vec.astype("<f2").tobytes(), created_at=utcnow()))
    _no_build(monkeypatch)
    index = VectorIndex(library, KEY, hnsw_min_size=0)
    index.hnsw()
    stats = index.graph.stats
    assert (stats.built, stats.added, stats.removed, stats.updated) == (False, 5, 3, 2)
    assert [_first(index, v) for v in fresh] == new_ids
    assert [_first(index, v) for v in turned] == moved
    everything = index.search(index.vectors.matrix[50], len(index.vectors))[0]
    assert not set(gone) & set(everything.tolist()) and len(everything) == 200 + 5 - 3
    # Saved as updated: the next open serves it as it is; a photo that comes back is undeleted, not rebuilt.
    assert VectorIndex(library, KEY, hnsw_min_size=0).hnsw() is not None
    with library.session() as s, s.begin():
        s.execute(update(Photo).where(Photo.id == gone[0]).values(missing_since=None))
    back = VectorIndex(library, KEY, hnsw_min_size=0)
    back.hnsw()
    assert back.graph.stats.added == 1 and _first(back, back.vectors.matrix[back.vectors.row_of(gone[0])]) == gone[0]


def test_a_worn_graph_is_rebuilt(library, filled):
    VectorIndex(library, KEY, hnsw_min_size=0).hnsw()
    with library.session() as s, s.begin():  # more than a quarter of the graph gone
        s.execute(update(Photo).where(Photo.id.in_(filled[:60])).values(missing_since=datetime(2024, 1, 1)))
    index = VectorIndex(library, KEY, hnsw_min_size=0)
    index.hnsw()
    assert index.graph.stats.built and index.graph.stats.added == 140
    # Control: a few gone is an update.
    with library.session() as s, s.begin():
        s.execute(update(Photo).where(Photo.id.in_(filled[60:65])).values(missing_since=datetime(2024, 1, 1)))
    again = VectorIndex(library, KEY, hnsw_min_size=0)
    again.hnsw()
    assert not again.graph.stats.built and again.graph.stats.removed == 5


def test_background_searches_answer_exactly_until_the_graph_is_ready(library, filled, monkeypatch):
    release, started = threading.Event(), threading.Event()
    real_open = SavedGraph.open

    def slow_open(self, snap, changed_since):
        started.set()
        assert release.wait(30)
        return real_open(self, snap, changed_since)

    monkeypatch.setattr(SavedGraph, "open", slow_open)
    index = VectorIndex(library, KEY, hnsw_min_size=0, background=True)
    query = index.vectors.matrix[42]
    assert index.search_mode == "exact"
    ids, scores = index.search(query, 10)  # the graph is being made: no waiting, exact answers
    assert started.wait(10) and not index.graph_ready
    exact_ids, exact_scores = _exact_top(library, query, 10)
    assert ids.tolist() == exact_ids.tolist() and np.allclose(scores, exact_scores)
    release.set()
    index.prepare_graph().join(30)
    assert index.graph_ready and index.search_mode == "hnsw" and index.search(query, 1)[0][0] == filled[42]


def test_a_kill_between_graph_files_is_detected(library, filled, monkeypatch):
    VectorIndex(library, KEY, hnsw_min_size=0).hnsw()
    add_photos(library, KEY, [{"path": "/v/late.jpg", "vector": np.ones(16)}])
    real_write = derived.atomic_write

    def die_at_manifest(path, write):
        if path.suffix == ".json":
            raise KeyboardInterrupt  # killed after the new graph file, before its manifest
        real_write(path, write)

    monkeypatch.setattr(derived, "atomic_write", die_at_manifest)
    with pytest.raises(KeyboardInterrupt):
        VectorIndex(library, KEY, hnsw_min_size=0).hnsw()
    monkeypatch.setattr(derived, "atomic_write", real_write)
    graph_mod.forget_live()  # the next process finds the files as the kill left them
    built = []
    real_build = SavedGraph._build
    monkeypatch.setattr(SavedGraph, "_build", lambda self, snap: built.append(1) or real_build(self, snap))
    index = VectorIndex(library, KEY, hnsw_min_size=0)
    assert _first(index, np.ones(16)) == 201 and built == [1]  # the old manifest no longer matches: rebuilt


@pytest.mark.parametrize("damage", ["garbage", "truncate", "delete", "manifest"])
def test_damaged_index_is_rebuilt(library, filled, damage):
    VectorIndex(library, KEY, hnsw_min_size=0).hnsw()
    graph = SavedGraph(library.vectors_dir, KEY)
    index_file, manifest = graph.index_path, graph.manifest_path
    if damage == "garbage":
        data = bytearray(index_file.read_bytes())
        data[100:200] = b"\xff" * 100
        index_file.write_bytes(bytes(data))
    elif damage == "truncate":
        index_file.write_bytes(index_file.read_bytes()[:1000])
    elif damage == "delete":
        index_file.unlink()
    else:
        manifest.write_text("{not json")
    graph_mod.forget_live()  # a new process, which has only the files
    built = []
    original = SavedGraph._build

    def spy(self, snap):
        built.append(True)
        return original(self, snap)

    graph_mod.SavedGraph._build = spy
    try:
        index = VectorIndex(library, KEY, hnsw_min_size=0)
        query = index.vectors.matrix[11]
        ids, _ = index.search(query, 5)
    finally:
        graph_mod.SavedGraph._build = original
    assert built == [True]
    assert ids[0] == filled[11]


def test_filtered_search_respects_mask_in_both_modes(library, filled):
    for min_size in (0, 10**9):
        index = VectorIndex(library, KEY, hnsw_min_size=min_size)
        allow = np.zeros(len(index.vectors), bool)
        allow[::7] = True
        ids, _ = index.search(index.vectors.matrix[0], 5, allow)
        assert set(ids) <= set(index.vectors.ids[allow])
        assert len(ids) == 5


def test_temp_files_a_killed_save_left_are_swept(library, filled):
    import os
    import time

    library.vectors_dir.mkdir(parents=True, exist_ok=True)
    graph = SavedGraph(library.vectors_dir, KEY)
    old = graph.index_path.with_name(graph.index_path.name + "abc.tmp")
    recent = graph.index_path.with_name(graph.index_path.name + "def.tmp")  # maybe another process's, saving now
    for p in (old, recent):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    VectorIndex(library, KEY, hnsw_min_size=0).hnsw()
    assert not old.exists() and recent.exists()


def test_a_failing_background_graph_leaves_exact_search(library, filled, monkeypatch):
    def broken(self, snap, changed_since):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SavedGraph, "open", broken)
    index = VectorIndex(library, KEY, hnsw_min_size=0, background=True)
    query = index.vectors.matrix[7]
    index.search(query, 3)
    index.prepare_graph().join(10)
    assert isinstance(index.graph_error, OSError) and not index.graph_ready
    assert index.search(query, 3)[0].tolist() == _exact_top(library, query, 3)[0].tolist()
