"""Incremental indexing with the real indexer: what a re-scan redoes, what
it keeps, and how photos keep their identity when files move."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _crash_reader import crash_on_marker
from PIL import Image
from sqlalchemy import func, select

from clipdesk import decode_pool
from clipdesk.config import CoreConfig
from clipdesk.engine.clip import InputSpec
from clipdesk.imageio import read_many
from clipdesk.indexer import index
from clipdesk.jobs import CancelToken
from clipdesk.store.db import Library
from clipdesk.store.models import Caption, Embedding, Folder, Label, Photo, ScanError
from clipdesk.store.vectors import load_vectors

INLINE = CoreConfig(decode_workers=0)


class FakeEngine:
    """A second 'model': 8-dim vectors built from colour statistics."""

    key = "test:fake-colour-stats"
    batch_size = 4

    def __init__(self) -> None:
        self.encoded = 0

    def input_spec(self) -> InputSpec:
        return InputSpec(size=32, squash=True)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        assert pixels.dtype == np.uint8 and pixels.shape[1:] == (32, 32, 3)
        self.encoded += len(pixels)
        x = pixels.reshape(len(pixels), -1, 3).astype(np.float32) / 255.0
        v = np.concatenate([x.mean(1), x.std(1), np.ones((len(x), 2), np.float32)], axis=1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def root(tmp_path, coco_images) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i, src in enumerate(coco_images[:5]):
        shutil.copy(src, (root if i < 3 else root / "sub") / src.name)
    return root


def rows(library) -> dict[str, Photo]:
    with library.session() as s:
        return {p.path: p for p in s.scalars(select(Photo))}


def embeddings(library, model_key: str | None = None) -> list[Embedding]:
    with library.session() as s:
        q = select(Embedding).order_by(Embedding.photo_id, Embedding.model_key)
        if model_key is not None:
            q = q.where(Embedding.model_key == model_key)
        return list(s.scalars(q))


def scan_errors(library) -> dict[str, str]:
    with library.session() as s:
        return {e.path: e.reason for e in s.scalars(select(ScanError))}


def embedding_of(library, photo_id: int, model_key: str) -> Embedding:
    with library.session() as s:
        emb = s.get(Embedding, (photo_id, model_key))
        assert emb is not None
        return emb


def add_label_and_caption(library, photo_id: int) -> None:
    with library.session() as s, s.begin():
        s.add(Label(photo_id=photo_id, label="giraffe", score=0.9, source="user", status="accepted"))
        s.add(Caption(photo_id=photo_id, text="a tall animal by a tree", source="user"))


def labels_and_captions(library, photo_id: int) -> tuple[list[str], list[str]]:
    with library.session() as s:
        labels = list(s.scalars(select(Label.label).where(Label.photo_id == photo_id)))
        captions = list(s.scalars(select(Caption.text).where(Caption.photo_id == photo_id)))
    return labels, captions


def test_second_run_skips_unchanged(library, tiny_engine, root):
    first = index(library, [root], tiny_engine, INLINE)
    assert (first.found, first.new, first.embedded, first.errors) == (5, 5, 5, 0)
    before = {(e.photo_id, e.vector, e.created_at) for e in embeddings(library)}
    second = index(library, [root], tiny_engine, INLINE)
    assert (second.found, second.unchanged, second.new, second.changed, second.embedded) == (5, 5, 0, 0, 0)
    assert (second.moved, second.missing) == (0, 0)
    assert {(e.photo_id, e.vector, e.created_at) for e in embeddings(library)} == before
    with library.session() as s:
        folder = s.scalar(select(Folder))
        assert folder.path == str(root) and folder.scan_complete
        assert {p.folder_id for p in s.scalars(select(Photo))} == {folder.id}


def test_touched_file_updates_metadata_without_reembedding(library, tiny_engine, root):
    index(library, [root], tiny_engine, INLINE)
    target = next(root.glob("*.jpg"))
    old = rows(library)[str(target)]
    old_emb = embedding_of(library, old.id, tiny_engine.key)
    new_mtime = old.mtime_ns + 86_400 * 10**9
    os.utime(target, ns=(new_mtime, new_mtime))

    report = index(library, [root], tiny_engine, INLINE)
    assert (report.unchanged, report.changed, report.new, report.embedded) == (4, 0, 0, 0)
    photo = rows(library)[str(target)]
    assert photo.id == old.id and photo.mtime_ns == new_mtime  # metadata refreshed
    assert photo.content_hash == old.content_hash
    emb = embedding_of(library, old.id, tiny_engine.key)
    assert (emb.vector, emb.created_at) == (old_emb.vector, old_emb.created_at)
    # And the refreshed mtime means the next scan skips it again.
    assert index(library, [root], tiny_engine, INLINE).unchanged == 5


def test_changed_content_is_reembedded_in_place(library, tiny_engine, root, coco_images):
    index(library, [root], tiny_engine, INLINE)
    target = next(root.glob("*.jpg"))
    old = rows(library)[str(target)]
    old_vec = embedding_of(library, old.id, tiny_engine.key).vector
    shutil.copy(coco_images[10], target)  # new bytes, same name

    report = index(library, [root], tiny_engine, INLINE)
    assert (report.changed, report.embedded, report.new, report.unchanged) == (1, 1, 0, 4)
    photo = rows(library)[str(target)]
    assert photo.id == old.id
    assert photo.content_hash != old.content_hash
    assert photo.size == target.stat().st_size
    with Image.open(coco_images[10]) as im:
        assert (photo.width, photo.height) == im.size
    [emb] = [e for e in embeddings(library) if e.photo_id == old.id]  # still exactly one row
    assert emb.content_hash == photo.content_hash
    assert emb.vector != old_vec
    assert len(embeddings(library)) == 5


def test_file_rewritten_between_walk_and_read_is_stored_consistently(library, tiny_engine, root, coco_images, monkeypatch):
    """Size, mtime and hash all come from the one read, so the next scan
    agrees with the stored row instead of re-embedding or missing a change."""
    from clipdesk import indexer

    target = next(root.glob("*.jpg"))
    real_walk = indexer.walk

    def walk_then_rewrite(*args, **kwargs):
        for item in real_walk(*args, **kwargs):
            yield item
            if item.path == str(target):
                shutil.copy(coco_images[12], target)  # listed with the old size, read with the new
                os.utime(target, ns=(item.mtime_ns + 10**9, item.mtime_ns + 10**9))

    monkeypatch.setattr(indexer, "walk", walk_then_rewrite)
    index(library, [root], tiny_engine, INLINE)
    monkeypatch.undo()
    photo = rows(library)[str(target)]
    st = target.stat()
    assert (photo.size, photo.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert photo.content_hash == read_many([str(target)], None)[0][1].content_hash
    again = index(library, [root], tiny_engine, INLINE)
    assert (again.unchanged, again.embedded, again.changed) == (5, 0, 0)


def test_move_within_root_keeps_identity_labels_and_embedding(library, tiny_engine, root):
    index(library, [root], tiny_engine, INLINE)
    src = next(root.glob("*.jpg"))
    old = rows(library)[str(src)]
    add_label_and_caption(library, old.id)
    old_emb = embedding_of(library, old.id, tiny_engine.key)
    dst = root / "sub" / "deeper" / "renamed.jpg"
    dst.parent.mkdir()
    src.rename(dst)

    report = index(library, [root], tiny_engine, INLINE)
    assert (report.moved, report.new, report.embedded, report.missing) == (1, 0, 0, 0)
    by_path = rows(library)
    assert str(src) not in by_path
    assert by_path[str(dst)].id == old.id and by_path[str(dst)].missing_since is None
    assert labels_and_captions(library, old.id) == (["giraffe"], ["a tall animal by a tree"])
    emb = embedding_of(library, old.id, tiny_engine.key)
    assert (emb.vector, emb.created_at) == (old_emb.vector, old_emb.created_at)
    assert len(by_path) == 5


@pytest.mark.parametrize("rescan_old_root_first", [True, False])
def test_move_to_another_root_indexed_later(library, tiny_engine, root, tmp_path, rescan_old_root_first):
    other = tmp_path / "other-drive"
    other.mkdir()
    index(library, [root], tiny_engine, INLINE)
    src = next(root.glob("*.jpg"))
    old = rows(library)[str(src)]
    add_label_and_caption(library, old.id)
    dst = other / "kept.jpg"
    shutil.move(src, dst)

    if rescan_old_root_first:
        gone = index(library, [root], tiny_engine, INLINE)
        assert gone.missing == 1
        assert rows(library)[str(src)].missing_since is not None
        assert old.id not in load_vectors(library, tiny_engine.key).ids

    report = index(library, [other], tiny_engine, INLINE)
    assert (report.moved, report.new, report.embedded) == (1, 0, 0)
    photo = rows(library)[str(dst)]
    assert photo.id == old.id and photo.missing_since is None
    with library.session() as s:
        assert photo.folder_id == s.scalar(select(Folder.id).where(Folder.path == str(other)))
    assert labels_and_captions(library, old.id) == (["giraffe"], ["a tall animal by a tree"])
    assert old.id in load_vectors(library, tiny_engine.key).ids
    # Back on the first root: nothing is missing, nothing new.
    again = index(library, [root], tiny_engine, INLINE)
    assert (again.missing, again.new, again.unchanged) == (0, 0, 4)


def test_two_copies_moved_together_keep_one_row_each(library, root):
    engine = FakeEngine()
    src = next(root.glob("*.jpg"))
    twin = root / "twin.jpg"
    shutil.copy(src, twin)
    index(library, [root], engine, INLINE)
    before = rows(library)
    ids = {before[str(src)].id, before[str(twin)].id}
    moved = root / "moved"
    moved.mkdir()
    src.rename(moved / "one.jpg")
    twin.rename(moved / "two.jpg")
    engine.encoded = 0

    report = index(library, [root], engine, INLINE)  # both in one batch: each must claim its own row
    assert (report.moved, report.new, report.embedded, report.missing) == (2, 0, 0, 0)
    assert engine.encoded == 0  # the read step saw the same two moves: no vector computed for nothing
    after = rows(library)
    assert {after[str(moved / "one.jpg")].id, after[str(moved / "two.jpg")].id} == ids
    assert len(after) == 6 and str(src) not in after and str(twin) not in after


def test_copy_is_a_new_photo_not_a_move(library, tiny_engine, root):
    index(library, [root], tiny_engine, INLINE)
    src = next(root.glob("*.jpg"))
    old = rows(library)[str(src)]
    shutil.copy(src, root / "copy-of-it.jpg")
    report = index(library, [root], tiny_engine, INLINE)
    assert (report.new, report.moved, report.embedded, report.unchanged) == (1, 0, 1, 5)
    by_path = rows(library)
    assert by_path[str(src)].id == old.id
    assert by_path[str(root / "copy-of-it.jpg")].id != old.id
    assert by_path[str(root / "copy-of-it.jpg")].content_hash == old.content_hash


def test_deleted_file_is_missing_and_comes_back(library, tiny_engine, root, tmp_path):
    index(library, [root], tiny_engine, INLINE)
    target = next(root.glob("*.jpg"))
    old = rows(library)[str(target)]
    add_label_and_caption(library, old.id)
    stash = tmp_path / "stash.jpg"
    shutil.move(target, stash)

    report = index(library, [root], tiny_engine, INLINE)
    assert (report.missing, report.unchanged, report.embedded) == (1, 4, 0)
    photo = rows(library)[str(target)]
    assert photo.missing_since is not None
    vectors = load_vectors(library, tiny_engine.key)
    assert old.id not in vectors.ids and len(vectors) == 4
    assert len(embeddings(library)) == 5  # the row is kept, to reclaim on return
    # Still missing on the next scan, not counted twice.
    assert index(library, [root], tiny_engine, INLINE).missing == 0

    shutil.move(stash, target)
    back = index(library, [root], tiny_engine, INLINE)
    assert (back.new, back.embedded, back.missing) == (0, 0, 0)
    photo = rows(library)[str(target)]
    assert photo.id == old.id and photo.missing_since is None
    assert old.id in load_vectors(library, tiny_engine.key).ids
    assert labels_and_captions(library, old.id) == (["giraffe"], ["a tall animal by a tree"])


def test_model_change_reembeds_under_the_new_key_and_keeps_the_old(library, tiny_engine, root, coco_images):
    index(library, [root], tiny_engine, INLINE)
    tiny_rows = {(e.photo_id, e.vector) for e in embeddings(library, tiny_engine.key)}
    fake = FakeEngine()

    report = index(library, [root], fake, INLINE)
    assert (report.embedded, report.new, report.unchanged) == (5, 0, 5)
    assert fake.encoded == 5
    assert {(e.photo_id, e.vector) for e in embeddings(library, tiny_engine.key)} == tiny_rows
    fake_rows = embeddings(library, fake.key)
    assert {e.photo_id for e in fake_rows} == {pid for pid, _ in tiny_rows}
    assert {e.dim for e in fake_rows} == {8} and {e.dim for e in embeddings(library, tiny_engine.key)} == {tiny_engine.dim}
    vectors = load_vectors(library, fake.key)
    assert vectors.matrix.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors.matrix, axis=1), 1.0, atol=2e-3)

    # Each model then only does its own work.
    assert index(library, [root], fake, INLINE).embedded == 0
    assert index(library, [root], tiny_engine, INLINE).embedded == 0
    target = next(root.glob("*.jpg"))
    shutil.copy(coco_images[11], target)
    assert index(library, [root], fake, INLINE).embedded == 1
    # The tiny model's vector for the changed file is stale until it runs.
    pid = rows(library)[str(target)].id
    photo_hash = rows(library)[str(target)].content_hash
    assert embedding_of(library, pid, tiny_engine.key).content_hash != photo_hash
    assert index(library, [root], tiny_engine, INLINE).embedded == 1
    assert embedding_of(library, pid, tiny_engine.key).content_hash == photo_hash
    with library.session() as s:
        per_key = dict(s.execute(select(Embedding.model_key, func.count()).group_by(Embedding.model_key)).all())
    assert per_key == {tiny_engine.key: 5, fake.key: 5}


def test_cancelled_run_is_finished_by_the_next(library, tiny_engine, tmp_path, coco_images):
    root = tmp_path / "many"
    root.mkdir()
    for src in coco_images[:40]:
        shutil.copy(src, root / src.name)
    token = CancelToken()

    def progress(p):
        if p.phase == "indexing" and p.done >= tiny_engine.batch_size:
            token.cancel()

    first = index(library, [root], tiny_engine, INLINE, progress=progress, cancel=token)
    assert first.cancelled
    assert 0 < first.embedded < 40
    second = index(library, [root], tiny_engine, INLINE)
    assert not second.cancelled
    assert second.embedded == 40 - first.embedded
    assert second.missing == 0
    assert len(embeddings(library, tiny_engine.key)) == 40


# -- the decode worker pool --------------------------------------------------------


def test_worker_pool_gives_the_same_index_as_inline(library, tiny_engine, tmp_path, coco_images, monkeypatch):
    root = tmp_path / "sixty"
    root.mkdir()
    for src in coco_images[:60]:
        shutil.copy(src, root / src.name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    used_workers = []
    real_decode = decode_pool.decode

    def spy(paths, target, squash, workers, *args, **kwargs):
        used_workers.append(workers)
        return real_decode(paths, target, squash, workers, *args, **kwargs)

    monkeypatch.setattr(decode_pool, "decode", spy)
    pooled = index(library, [root], tiny_engine, CoreConfig(decode_workers=2))
    other = Library(tmp_path / "lib-inline")
    try:
        inline = index(other, [root], tiny_engine, INLINE)
        a, b = _index_contents(library, tiny_engine.key), _index_contents(other, tiny_engine.key)
        errors_a, errors_b = scan_errors(library), scan_errors(other)
    finally:
        other.close()
    assert used_workers == [2, 0]
    assert (pooled.new, pooled.embedded, pooled.errors) == (inline.new, inline.embedded, inline.errors) == (60, 60, 1)
    assert errors_a == errors_b and list(errors_a) == [str(root / "broken.jpg")]
    assert a.keys() == b.keys() and len(a) == 60
    for path, (hash_a, meta_a, vec_a) in a.items():
        hash_b, meta_b, vec_b = b[path]
        assert (hash_a, meta_a) == (hash_b, meta_b)
        np.testing.assert_allclose(vec_a, vec_b, atol=2e-3)


def _index_contents(library, model_key):
    out = {}
    with library.session() as s:
        for photo, emb in s.execute(select(Photo, Embedding).join(Embedding).where(Embedding.model_key == model_key)):
            assert emb.content_hash == photo.content_hash
            meta = (photo.size, photo.mtime_ns, photo.width, photo.height, photo.format)
            out[photo.path] = (photo.content_hash, meta, np.frombuffer(emb.vector, "<f2").astype(np.float32))
    return out


def test_decode_pool_survives_a_crashing_decoder(tmp_path):
    # Enough files that the pool's whole look-ahead window is lost with the
    # crash and refilled from the replacement pool.
    paths = []
    for i in range(90):
        name = "CRASH.png" if i == 5 else f"{i:03}.png"
        Image.new("RGB", (24, 16), (i, 255 - i, (7 * i) % 256)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    paths.insert(40, str(tmp_path / "missing.png"))

    results = list(decode_pool.decode(iter(paths), 8, False, workers=2, reader=crash_on_marker))
    assert [p for p, _, _ in results] == paths  # one result per path, in order
    by_path = {p: (info, err) for p, info, err in results}
    assert by_path[str(tmp_path / "CRASH.png")] == (None, decode_pool.CRASHED)
    assert by_path[str(tmp_path / "missing.png")] == (None, "vanished during the scan")
    expected = {p: info for p, info, _ in read_many([p for p in paths if "CRASH" not in p and "missing" not in p], 8)}
    for path, info in expected.items():
        got, err = by_path[path]
        assert err is None
        assert got.content_hash == info.content_hash
        np.testing.assert_array_equal(got.pixels, info.pixels)


def test_decode_pool_survives_a_crash_while_the_consumer_is_busy(tmp_path, monkeypatch):
    """The pool breaks between two reads of the results (the indexer is busy
    encoding): the next submission must not fail with BrokenProcessPool."""
    import _crash_reader

    paths = []
    for i in range(100):
        name = "CRASH.png" if i == 9 else f"{i:03}.png"  # in the second chunk
        Image.new("RGB", (24, 16), (i, 255 - i, 0)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    gate = tmp_path / _crash_reader.GATE
    os.mkfifo(gate)
    pools = []
    real_new_pool = decode_pool._new_pool

    def recording_new_pool(workers):
        pools.append(real_new_pool(workers))
        return pools[-1]

    monkeypatch.setattr(decode_pool, "_new_pool", recording_new_pool)
    gen = decode_pool.decode(iter(paths), 8, False, workers=2, reader=crash_on_marker)
    results = [next(gen)]  # the first chunk is done; the crashing one waits at the gate
    with open(gate, "wb") as fh:  # let it crash now ...
        fh.write(b"go")
    # ... and wait until the executor has noticed (its manager thread exits
    # once the pool is broken; a CPython detail, but no sleeping and guessing).
    pools[0]._executor_manager_thread.join(timeout=60)
    assert not pools[0]._executor_manager_thread.is_alive()
    results.extend(gen)
    assert [p for p, _, _ in results] == paths
    errors = {p: err for p, _, err in results if err is not None}
    assert errors == {str(tmp_path / "CRASH.png"): decode_pool.CRASHED}
    assert all(info.pixels.shape == (8, 8, 3) for p, info, _ in results if p not in errors)


def test_decode_pool_close_early_stops_cleanly(tmp_path):
    paths = []
    for i in range(40):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / f"{i:02}.png")
        paths.append(str(tmp_path / f"{i:02}.png"))
    gen = decode_pool.decode(iter(paths), 4, False, workers=2)
    first = [next(gen) for _ in range(3)]
    gen.close()  # what the indexer does on cancel: must shut the pool down, not hang
    assert [p for p, _, _ in first] == paths[:3]
    assert all(err is None for _, _, err in first)


def test_inline_decode_matches_read_many(tmp_path, coco_images):
    paths = [str(p) for p in coco_images[:4]] + [str(tmp_path / "nope.jpg")]
    got = list(decode_pool.decode(iter(paths), 16, True, workers=0))
    want = read_many(paths, 16, True)
    assert [(p, e) for p, _, e in got] == [(p, e) for p, _, e in want]
    for (_, a, _), (_, b, _) in zip(got[:4], want[:4], strict=True):
        np.testing.assert_array_equal(a.pixels, b.pixels)
