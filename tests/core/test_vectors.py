"""The HNSW file is derived data: rebuilt when missing, stale or corrupt."""

from __future__ import annotations

import numpy as np
import pytest
from _vecdb import add_photos

from clipdesk.store import vectors as vectors_mod
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
    monkeypatch.setattr(VectorIndex, "_build_hnsw", lambda self: pytest.fail("rebuilt a current index"))
    again = VectorIndex(library, KEY, hnsw_min_size=0)
    assert list(again.search(query, 10)[0]) == list(ids)


def test_stale_index_is_rebuilt(library, filled):
    VectorIndex(library, KEY, hnsw_min_size=0).hnsw()
    new_vec = np.zeros(16)
    new_vec[0] = 1
    (new_id,) = add_photos(library, KEY, [{"path": "/v/new.jpg", "vector": new_vec}])
    index = VectorIndex(library, KEY, hnsw_min_size=0)
    ids, _ = index.search(new_vec.astype(np.float32), 1)
    assert ids[0] == new_id


@pytest.mark.parametrize("damage", ["garbage", "truncate", "delete", "manifest"])
def test_damaged_index_is_rebuilt(library, filled, damage):
    VectorIndex(library, KEY, hnsw_min_size=0).hnsw()
    (index_file,) = library.vectors_dir.glob("*.hnsw")
    (manifest,) = library.vectors_dir.glob("*.json")
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
    built = []
    original = VectorIndex._build_hnsw

    def spy(self):
        built.append(True)
        return original(self)

    vectors_mod.VectorIndex._build_hnsw = spy
    try:
        index = VectorIndex(library, KEY, hnsw_min_size=0)
        query = index.vectors.matrix[11]
        ids, _ = index.search(query, 5)
    finally:
        vectors_mod.VectorIndex._build_hnsw = original
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
