"""Duplicate grouping on constructed hashes and vectors: embedding-confirmed tiers, candidates, keeper, calibration."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from clipdesk.duplicates.candidates import band_pairs, knn, time_pairs
from clipdesk.duplicates.data import DupData
from clipdesk.duplicates.grouping import Thresholds, calibrate, find_groups
from clipdesk.duplicates.keeper import PhotoFacts, choose_keeper


def _data(n, vectors, taken, phash=None):
    rng = np.random.default_rng(0)
    phash = rng.integers(0, 2**63, n, dtype=np.uint64) if phash is None else np.asarray(phash, np.uint64)
    variants = np.stack([phash] + [rng.integers(0, 2**63, n, dtype=np.uint64) for _ in range(7)], axis=1)
    vectors = np.asarray(vectors, np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return DupData(np.arange(1, n + 1), [f"c{i}" for i in range(n)], [f"p{i}" for i in range(n)], phash, variants,
                   np.ones(n, bool), np.asarray(taken, float), [None] * n, vectors, np.ones(n, bool))


def _cos_vec(base, cos, other):
    return cos * base + np.sqrt(1 - cos**2) * other


def test_embeddings_confirm_crops_and_bursts_and_times_separate_them():
    e = np.eye(6)
    vecs = [e[0], _cos_vec(e[0], 0.95, e[1]),  # an original and its crop: hashes unrelated, cosine 0.95
            e[2], _cos_vec(e[2], 0.85, e[3]),  # two shots of a scene, 2 s apart
            e[4], _cos_vec(e[4], 0.95, e[5])]  # as close as a crop, but taken 5 s apart: a series, not a copy
    taken = [np.nan, np.nan, 100.0, 102.0, 500.0, 505.0]
    groups = find_groups(_data(6, vecs, taken), Thresholds())
    assert sorted((g.tier, sorted(m.photo_id for m in g.members)) for g in groups) == [
        ("near", [1, 2]), ("similar", [3, 4]), ("similar", [5, 6])]
    near = next(g for g in groups if g.tier == "near")
    assert near.members[1].evidence["cosine"] == np.float32(0.95).round(4)
    # Control: without the embeddings the crop is not found (its hash moved), and the bursts lean on hashes.
    assert find_groups(_data(6, vecs, taken), Thresholds(), use_cosine=False) == []


def test_a_close_hash_needs_the_embedding_to_agree():
    e = np.eye(4)
    ph = [0, 0b111, 1 << 40, (1 << 40) | 0b11]
    vecs = [e[0], _cos_vec(e[0], 0.9, e[1]), e[2], _cos_vec(e[2], 0.1, e[3])]  # pair 2: hash close, content not
    groups = find_groups(_data(4, vecs, [np.nan] * 4, ph), Thresholds())
    assert [sorted(m.photo_id for m in g.members) for g in groups] == [[1, 2]]
    assert groups[0].members[1].evidence["phash_distance"] == 3


def test_candidates_never_take_all_pairs():
    rng = np.random.default_rng(1)
    n = 20000
    ph = rng.integers(0, 2**63, n, dtype=np.uint64)
    planted = ph[:100] ^ np.uint64(0b101)  # 100 copies 2 bits away
    ph = np.concatenate([ph, planted])
    pairs = band_pairs(ph, np.stack([ph] * 8, axis=1), np.ones(len(ph), bool))
    found = {tuple(p) for p in pairs.tolist()}
    assert all((i, n + i) in found for i in range(100))  # within 3 bits: always share a band
    assert len(pairs) < 5 * n  # random 64-bit hashes: a handful of band collisions, not n^2 / 2
    t = np.array([0, 1, 2, 1000, 1001, np.nan])
    assert time_pairs(t, 5).tolist() == [[0, 1], [0, 2], [1, 2], [3, 4]]


def test_exact_and_graph_neighbours_agree():
    from clipdesk.store.graph import Graph

    m = np.random.default_rng(2).standard_normal((300, 16)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    index = Graph.build(np.arange(300), lambda a, b: m[a:b], 16)
    a, sa = knn(m, 5)
    b, sb = knn(m, 5, index)
    def overlap(x, y):  # per row: the share of one's neighbours the other found too
        return np.mean([len(set(p) & set(q)) / len(p) for p, q in zip(x, y, strict=True)])

    assert overlap(a, b) > 0.97
    assert not (a == np.arange(300)[:, None]).any() and not (b == np.arange(300)[:, None]).any()
    ids = 10 + 2 * np.arange(300)  # the library's graph is labelled by photo id
    by_id = Graph.build(ids, lambda a, b: m[a:b], 16)
    c, _ = knn(m, 5, by_id, labels=ids)
    assert overlap(a, c) > 0.97  # the graph labelled by photo id answers in rows just the same
    assert overlap(a, np.roll(a, 1, axis=0)) < 0.2  # control: unrelated neighbour lists do not pass
    np.testing.assert_allclose(sb, np.take_along_axis(m @ m.T, b, axis=1), atol=1e-5)  # exact cosines, not bf16


def test_calibration_follows_the_model_and_needs_enough_photos():
    sim = np.full((500, 10), 0.75, np.float32)
    th = calibrate(sim)
    assert th.calibrated and abs(th.near_cos - 0.90) < 1e-6 and abs(th.similar_cos - 0.825) < 1e-6
    assert calibrate(np.full((500, 10), 0.2, np.float32)).near_cos == 0.85  # clamped
    assert calibrate(sim[:50]) == Thresholds()  # too few to say


def _facts(pid, w, h, size, fmt="JPEG", taken=None, camera=False, gps=False, mtime=0):
    return PhotoFacts(pid, f"/p/{pid}", w, h, size, fmt, mtime, taken, camera, gps)


def test_keeper_order_and_reasons():
    big, small = _facts(1, 4000, 3000, 3_000_000), _facts(2, 1024, 768, 900_000, taken=datetime(2020, 1, 1))
    keeper, why = choose_keeper([small, big])
    assert keeper is big and why.startswith("largest (4000×3000 vs 1024×768")
    rich = _facts(3, 4000, 3000, 2_000_000, camera=True, gps=True)
    assert choose_keeper([big, rich]) == (rich, "richest metadata (camera, GPS)")
    light = _facts(4, 4000, 3000, 1_000_000)
    assert choose_keeper([light, big])[1].startswith("least compressed (0.25 bytes per pixel")
    png = _facts(5, 4000, 3000, 9_000_000, fmt="PNG", mtime=2_000_000_000_000_000_000)
    keeper, why = choose_keeper([png, big])  # a PNG of a JPEG is bigger, not better: the older one wins
    assert keeper is big and why.startswith("oldest")
    assert "first added" in choose_keeper([_facts(7, 1, 1, 1), _facts(6, 1, 1, 1)])[1]


def test_the_library_graph_is_used_and_unreadable_files_are_skipped(library, monkeypatch):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _vecdb import add_photos

    from clipdesk.duplicates import run

    monkeypatch.setattr(run, "EXACT_KNN_BELOW", 2)  # the saved-HNSW path, on four photos
    ids = add_photos(library, "m", [{"path": f"/nowhere/{i}.jpg", "vector": v} for i, v in
                                    enumerate([[1, 0, 0, 0], [0.97, 0.24, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])])
    result = run.find_duplicates(library, "m")
    assert result.hashing.failed == 4 and "cannot read" in result.hashing.errors[0][1]
    assert [(g.tier, sorted(m.photo_id for m in g.members)) for g in result.groups] == [("near", ids[:2])]
    assert (library.vectors_dir / "m.hnsw").exists()  # built once, saved for the next run


def test_cancel_keeps_the_hashes_made_so_far(library, coco_images):
    from clipdesk.duplicates.compute import compute_hashes
    from clipdesk.imageio import read_photo
    from clipdesk.jobs import CancelToken
    from clipdesk.store.models import Photo

    with library.session() as s, s.begin():
        for p in coco_images[:5]:
            i = read_photo(p)
            s.add(Photo(path=str(p), size=i.size, mtime_ns=i.mtime_ns, content_hash=i.content_hash, format=i.format,
                        width=i.width, height=i.height))
    token = CancelToken()
    report = compute_hashes(library, batch=2, progress=lambda p: p.done >= 2 and token.cancel(), cancel=token)
    assert report.cancelled and report.hashed == 2
    assert compute_hashes(library).todo == 3  # the next run continues


def test_evidence_reads_as_words():
    from clipdesk.duplicates.grouping import evidence_words

    assert evidence_words({"content_hash": True}) == "same bytes"
    assert evidence_words({"pixels": True}) == "same pixels, other metadata"
    assert evidence_words({"phash_distance": 4, "transform": "rot90", "cosine": 0.97123}) == \
        "pHash 4 bits apart (rot90) · cosine 0.971"
    assert evidence_words({"phash_distance": 0, "transform": "identity", "seconds_apart": 2.0}) == \
        "pHash 0 bits apart · taken 2 s apart"
