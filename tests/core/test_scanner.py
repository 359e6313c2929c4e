"""scanner.walk: which files it lists, in what order, and what it reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clipdesk.jobs import CancelToken
from clipdesk.paths import LIBRARY_MARKER
from clipdesk.scanner import FileEntry, WalkError, walk


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def files(items) -> list[str]:
    return [i.path for i in items if isinstance(i, FileEntry)]


def errors(items) -> dict[str, str]:
    return {i.path: i.reason for i in items if isinstance(i, WalkError)}


def rel(root: Path, paths: list[str]) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


def test_depth_first_sorted_recursive(tmp_path):
    for name in ["b.jpg", "a.png", "sub/z.jpg", "sub/deeper/m.gif", "sub/c.webp", "c.tif", "zz/last.jpeg"]:
        touch(tmp_path / name)
    got = rel(tmp_path, files(walk([tmp_path])))
    # Each folder's files in name order, then its subfolders in name order.
    assert got == ["a.png", "b.jpg", "c.tif", "sub/c.webp", "sub/z.jpg", "sub/deeper/m.gif", "zz/last.jpeg"]


def test_entries_carry_size_and_mtime(tmp_path):
    p = touch(tmp_path / "a.jpg", b"12345")
    os.utime(p, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    (entry,) = walk([tmp_path])
    assert entry == FileEntry(str(p), 5, 1_600_000_000_123_456_789)


def test_extension_filter_case_insensitive(tmp_path):
    for name in ["A.JPG", "b.JpEg", "c.PNG", "d.txt", "e.jpg.txt", "f.mov", "noext", "g.HEIC.bak", "jpg"]:
        touch(tmp_path / name)
    assert rel(tmp_path, files(walk([tmp_path]))) == ["A.JPG", "b.JpEg", "c.PNG"]


def test_hidden_entries_and_library_folders_skipped(tmp_path):
    touch(tmp_path / "keep.jpg")
    touch(tmp_path / ".hidden.jpg")
    touch(tmp_path / ".thumbnails" / "t.jpg")
    touch(tmp_path / "lib" / LIBRARY_MARKER, b"")
    touch(tmp_path / "lib" / "inside.jpg")
    touch(tmp_path / "lib" / "nested" / "deep.jpg")
    touch(tmp_path / "skipme" / "s.jpg")
    items = list(walk([tmp_path], skip_dirs=(tmp_path / "skipme",)))
    assert rel(tmp_path, files(items)) == ["keep.jpg"]
    assert errors(items) == {}


def test_directory_named_like_an_image_is_walked_not_listed(tmp_path):
    touch(tmp_path / "album.jpg" / "inner.jpg")
    assert rel(tmp_path, files(walk([tmp_path]))) == ["album.jpg/inner.jpg"]


def test_single_file_roots(tmp_path):
    a = touch(tmp_path / "a.jpg")
    txt = touch(tmp_path / "notes.txt")
    touch(tmp_path / "dir" / "b.jpg")
    items = list(walk([a, txt, tmp_path / "dir", a]))
    # The unsupported file is ignored and the repeated root listed once.
    assert files(items) == [str(a), str(tmp_path / "dir" / "b.jpg")]
    assert errors(items) == {}


def test_missing_root_is_an_error_and_others_still_walked(tmp_path):
    touch(tmp_path / "ok" / "a.jpg")
    items = list(walk([tmp_path / "gone", tmp_path / "ok"]))
    assert files(items) == [str(tmp_path / "ok" / "a.jpg")]
    assert errors(items)[str(tmp_path / "gone")].startswith("cannot open folder")


def test_fifo_root_is_an_error_not_a_folder(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    items = list(walk([tmp_path / "pipe.jpg"]))
    assert files(items) == []
    assert "not a regular file" in errors(items)[str(tmp_path / "pipe.jpg")]


def test_hard_link_listed_once(tmp_path):
    a = touch(tmp_path / "a.jpg")
    os.link(a, tmp_path / "b.jpg")
    (tmp_path / "sub").mkdir()
    os.link(a, tmp_path / "sub" / "c.jpg")
    assert rel(tmp_path, files(walk([tmp_path]))) == ["a.jpg"]


def test_symlinks_to_files_listed_once_under_the_real_path(tmp_path):
    real = touch(tmp_path / "z_real.jpg")
    os.symlink(real, tmp_path / "a_link.jpg")  # sorts first, but is only a link
    os.symlink("z_real.jpg", tmp_path / "b_rel_link.jpg")
    assert rel(tmp_path, files(walk([tmp_path]))) == ["z_real.jpg"]


def test_symlinked_folder_listed_once_under_the_real_path(tmp_path):
    touch(tmp_path / "photos" / "trip" / "p.jpg")
    os.symlink(tmp_path / "photos" / "trip", tmp_path / "a_favourites")  # sorts before "photos"
    assert rel(tmp_path, files(walk([tmp_path]))) == ["photos/trip/p.jpg"]


def test_link_to_outside_the_root_is_followed(tmp_path):
    touch(tmp_path / "elsewhere" / "e.jpg")
    root = tmp_path / "root"
    touch(root / "r.jpg")
    os.symlink(tmp_path / "elsewhere", root / "linked")
    os.symlink(tmp_path / "elsewhere" / "e.jpg", root / "single.jpg")
    assert rel(root, files(walk([root]))) == ["r.jpg", "linked/e.jpg"]


def test_symlink_loops_terminate(tmp_path):
    touch(tmp_path / "a" / "p.jpg")
    os.symlink("..", tmp_path / "a" / "up")  # a/up -> tmp_path
    os.symlink(tmp_path / "a", tmp_path / "a" / "self")
    os.symlink("loop2.jpg", tmp_path / "loop1.jpg")  # a file-link cycle
    os.symlink("loop1.jpg", tmp_path / "loop2.jpg")
    items = list(walk([tmp_path]))
    assert rel(tmp_path, files(items)) == ["a/p.jpg"]
    errs = errors(items)
    assert set(errs) == {str(tmp_path / "loop1.jpg"), str(tmp_path / "loop2.jpg")}


def test_broken_symlink_recorded(tmp_path):
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "broken.jpg")
    os.symlink(tmp_path / "nowhere", tmp_path / "broken_dir")  # no photo extension: not worth a report
    items = list(walk([tmp_path]))
    assert files(items) == []
    assert errors(items) == {str(tmp_path / "broken.jpg"): "broken symbolic link"}


def test_special_files_recorded_without_opening(tmp_path):
    os.mkfifo(tmp_path / "x.jpg")
    os.mkfifo(tmp_path / "ignored.fifo")
    touch(tmp_path / "y.jpg")
    items = list(walk([tmp_path]))  # opening the FIFO would block forever
    assert rel(tmp_path, files(items)) == ["y.jpg"]
    assert "not a regular file" in errors(items)[str(tmp_path / "x.jpg")]
    assert len(errors(items)) == 1


def test_unlistable_folder_recorded(tmp_path, monkeypatch):
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "locked" / "b.jpg")
    touch(tmp_path / "z" / "c.jpg")
    locked = str(tmp_path / "locked")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(walk([tmp_path]))
    assert rel(tmp_path, files(items)) == ["a.jpg", "z/c.jpg"]
    assert errors(items) == {locked: "cannot list folder: Permission denied"}


def test_chmod_000_folder(tmp_path):
    locked = tmp_path / "locked"
    touch(locked / "b.jpg")
    touch(tmp_path / "a.jpg")
    locked.chmod(0)
    try:
        items = list(walk([tmp_path]))
        unreadable = not os.access(locked, os.R_OK | os.X_OK)
    finally:
        locked.chmod(0o755)
    if unreadable:
        assert rel(tmp_path, files(items)) == ["a.jpg"]
        assert errors(items)[str(locked)].startswith("cannot list folder")
    else:  # root ignores permissions: the folder is simply readable
        assert rel(tmp_path, files(items)) == ["a.jpg", "locked/b.jpg"]
        assert errors(items) == {}


def test_non_utf8_names(tmp_path):
    root = os.fsencode(tmp_path)
    os.mkdir(root + b"/\xff dir")
    for raw in (root + b"/caf\xe9.jpg", root + b"/\xff dir/x\x80.png"):
        with open(raw, "wb") as fh:
            fh.write(b"x")
    got = files(walk([tmp_path]))
    assert [os.fsencode(p) for p in got] == [root + b"/caf\xe9.jpg", root + b"/\xff dir/x\x80.png"]
    assert all(os.path.isfile(p) for p in got)


@pytest.mark.parametrize("layout", ["one_folder", "many_folders"])
def test_cancel_stops_the_walk(tmp_path, layout):
    for i in range(50):
        sub = tmp_path if layout == "one_folder" else tmp_path / f"d{i:02}"
        touch(sub / f"{i:02}.jpg")
    token = CancelToken()
    got = []
    for item in walk([tmp_path], cancel=token):
        got.append(item)
        if len(got) == 3:
            token.cancel()
    assert len(got) == 3


def test_cancelled_before_start_lists_nothing(tmp_path):
    touch(tmp_path / "a.jpg")
    token = CancelToken()
    token.cancel()
    assert list(walk([tmp_path, tmp_path / "a.jpg"], cancel=token)) == []


def test_walk_never_opens_files(tmp_path, monkeypatch):
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "sub" / "b.png")
    import builtins

    def no_open(*args, **kwargs):
        raise AssertionError(f"walk opened {args[0]!r}")

    monkeypatch.setattr(builtins, "open", no_open)
    monkeypatch.setattr(os, "open", no_open)
    assert len(files(walk([tmp_path]))) == 2
