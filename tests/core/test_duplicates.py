"""Duplicates on a generated tree: tiers with evidence, keepers, incremental hashes, broken files, trash + undo."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from clipdesk.duplicates.compute import compute_hashes
from clipdesk.duplicates.run import find_duplicates
from clipdesk.duplicates.synth import make_tree
from clipdesk.duplicates.trash import batches, move_to_trash, reconcile, undo
from clipdesk.imageio import read_photo
from clipdesk.store.models import Photo, PhotoHash, TrashLog


def _register(library, paths) -> dict[str, int]:
    """Photo rows as indexing writes them (no model needed for hashes)."""
    with library.session() as s, s.begin():
        rows = []
        for p in sorted(paths):
            i = read_photo(p)
            rows.append(Photo(path=p, size=i.size, mtime_ns=i.mtime_ns, content_hash=i.content_hash, format=i.format,
                              width=i.width, height=i.height, frames=1, taken_at=i.taken_at,
                              camera_make=i.camera_make, camera_model=i.camera_model))
        s.add_all(rows)
        s.flush()
        return {r.path: r.id for r in rows}


@pytest.fixture(scope="module")
def tree(tmp_path_factory, coco_images):
    return make_tree(coco_images[:7], tmp_path_factory.mktemp("dups") / "tree", negatives=3)


def _sha(paths) -> dict[str, str]:
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def test_tiers_keepers_and_evidence_match_the_known_answers(library, tree):
    before = _sha(tree.truth)
    _register(library, tree.truth)
    result = find_duplicates(library, None, use_cosine=False)
    found = {frozenset(m.path for m in g.members): g for g in result.groups}
    expected = {frozenset(paths): name for name, paths in tree.groups().items()}
    assert set(found) == set(expected)  # every group, whole; no negative anywhere
    for members, g in found.items():
        name = expected[members]
        assert g.tier == tree.tiers[name]
        if name in tree.keepers:
            assert g.keeper_path == tree.keepers[name]
        assert g.members[0].photo_id == g.keeper and g.keeper_reason
    by_name = {expected[k]: g for k, g in found.items()}
    assert by_name["exact000"].members[1].evidence == {"content_hash": True}
    assert by_name["pixels001"].members[1].evidence == {"pixels": True}
    assert "metadata" in by_name["pixels001"].keeper_reason
    near = {Path(m.path).stem.split("_", 1)[1]: m.evidence for m in by_name["near002"].members[1:]}
    assert near["rot90"]["transform"] == "rot90" and near["mirror"]["transform"] == "mirror"
    assert all(e["phash_distance"] <= 10 for e in near.values())
    assert "largest" in by_name["near002"].keeper_reason
    assert any(m.evidence.get("seconds_apart") for m in by_name["burst003"].members[1:])
    assert _sha(tree.truth) == before  # the photos' bytes never change
    # --tier keeps only that tier's groups
    assert {g.tier for g in find_duplicates(library, None, use_cosine=False, tier="near").groups} == {"near"}


def test_a_burst_is_found_by_its_capture_times(library, tree):
    """Control for the time rule: the same shots without capture times are no group (their hashes differ)."""
    burst = sorted(p for p, g in tree.truth.items() if g == "burst003")
    _register(library, burst)
    assert [g.tier for g in find_duplicates(library, None, use_cosine=False).groups] == ["similar"]
    with library.session() as s, s.begin():
        for photo in s.scalars(select(Photo)):
            photo.taken_at = None
    assert find_duplicates(library, None, use_cosine=False).groups == []


def test_hashes_are_incremental_and_broken_files_are_skipped(library, tree, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    paths = [p for p, g in tree.truth.items() if g == "exact000"]
    ids = _register(library, paths)
    with library.session() as s, s.begin():
        s.add(Photo(path=str(bad), size=10, mtime_ns=1, content_hash="bad", format="JPEG", width=1, height=1))
    first = compute_hashes(library)
    assert (first.todo, first.hashed, first.failed) == (3, 2, 1)
    assert "decode" in first.errors[0][1] or "image" in first.errors[0][1]
    assert compute_hashes(library).todo == 0  # nothing new: nothing read again
    with library.session() as s, s.begin():  # a changed file is hashed again
        s.get(Photo, ids[paths[0]]).content_hash = "changed"
    assert compute_hashes(library).todo == 1
    with library.session() as s:
        assert s.get(PhotoHash, ids[paths[0]]).content_hash == "changed"


@pytest.fixture
def trash_home(tmp_path, monkeypatch):
    """HOME and XDG_DATA_HOME in tmp_path, and send2trash's import-time home trash pointed there too."""
    from send2trash import plat_other

    data = tmp_path / "xdg"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(data))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(data / "Trash"))
    monkeypatch.setattr(plat_other, "HOMETRASH", str(data / "Trash"))
    return data / "Trash"


def test_trash_then_undo_restores_the_same_bytes(library, tree, tmp_path, trash_home):
    photos = tmp_path / "photos"
    shutil.copytree(tree.root, photos)
    ids = _register(library, [str(p) for p in photos.iterdir()])
    before = _sha(ids)
    groups = find_duplicates(library, None, use_cosine=False, tier="near").groups
    plan = [(m.photo_id, g.keeper) for g in groups for m in g.members if m.photo_id != g.keeper]
    report = move_to_trash(library, plan + [(groups[0].keeper, groups[0].keeper)])  # a keeper is never moved
    assert len(report.moved) == len(plan) == 9 and not report.failed
    assert all(not os.path.exists(p) for p in report.moved) and os.path.exists(groups[0].keeper_path)
    assert len(list((trash_home / "info").glob("*.trashinfo"))) == 9
    with library.session() as s:
        gone = s.scalars(select(Photo.id).where(Photo.missing_since.is_not(None))).all()
        log = s.scalars(select(TrashLog)).all()
    assert sorted(gone) == sorted(p for p, _ in plan)
    assert {r.state for r in log} == {"trashed"} and all(r.trash_path for r in log)
    assert find_duplicates(library, None, use_cosine=False, tier="near").groups == []  # gone from the library
    assert batches(library)[0][:2] == (report.batch_id, 9)

    back = undo(library)
    assert sorted(back.restored) == sorted(report.moved) and not back.failed
    assert _sha(ids) == before  # every photo back, byte for byte
    assert list((trash_home / "info").glob("*.trashinfo")) == []
    with library.session() as s:
        assert s.scalar(select(Photo.id).where(Photo.missing_since.is_not(None))) is None
    assert undo(library).batch_id is None  # nothing left to undo


def test_a_crash_between_moving_and_marking_is_reconciled(library, tree, tmp_path, trash_home):
    from send2trash import send2trash

    photos = tmp_path / "photos"
    shutil.copytree(tree.root, photos)
    ids = _register(library, [str(p) for p in photos.iterdir()])
    moved, stayed = sorted(ids)[:2]
    library.write(lambda s: s.add_all([TrashLog(batch_id="b1", photo_id=ids[p], original_path=p, state="intent")
                                       for p in (moved, stayed)]))
    send2trash(moved)  # the move happened, then the process died before marking
    assert reconcile(library) == 2
    with library.session() as s:
        states = dict(s.execute(select(TrashLog.original_path, TrashLog.state)).all())
        assert s.get(Photo, ids[moved]).missing_since is not None and s.get(Photo, ids[stayed]).missing_since is None
    assert states == {moved: "trashed", stayed: "failed"}
    assert undo(library, "b1").restored == [moved] and os.path.exists(moved)


def test_undo_elsewhere_says_how_instead_of_pretending(library, tree, tmp_path, trash_home, monkeypatch):
    from clipdesk.duplicates import trash

    photos = tmp_path / "photos"
    shutil.copytree(tree.root, photos)
    ids = _register(library, [str(p) for p in photos.iterdir()])
    group = find_duplicates(library, None, use_cosine=False, tier="exact").groups[0]
    report = move_to_trash(library, [(m.photo_id, group.keeper) for m in group.members])
    monkeypatch.setattr(trash, "FREEDESKTOP", False)
    monkeypatch.setattr(trash.sys, "platform", "win32")
    told = undo(library)
    assert told.restored == [] and "Recycle Bin" in told.message and "next scan" in told.message
    assert not any(os.path.exists(p) for p in report.moved)  # nothing faked: still in the trash
    with library.session() as s:
        assert {r.state for r in s.scalars(select(TrashLog))} == {"trashed"}
    assert len(ids) == len(tree.truth)


def test_nothing_is_trashed_when_the_photo_to_keep_has_gone(library, tree, tmp_path, trash_home):
    photos = tmp_path / "photos"
    shutil.copytree(tree.root, photos)
    ids = _register(library, [str(p) for p in photos.iterdir()])
    group = find_duplicates(library, None, use_cosine=False, tier="exact").groups[0]
    others = [m.photo_id for m in group.members if m.photo_id != group.keeper]
    os.rename(group.keeper_path, tmp_path / "moved-away.jpg")  # gone since the scan, e.g. moved by hand
    report = move_to_trash(library, [(pid, group.keeper) for pid in others])
    assert report.moved == [] and len(report.failed) == len(others)
    assert all(os.path.exists(p) for p, i in ids.items() if i in others)
    assert list(trash_home.glob("info/*.trashinfo")) == []
