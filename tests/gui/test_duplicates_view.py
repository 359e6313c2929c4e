"""Tools ▸ Find duplicates…: groups listed off the GUI thread, trash only after the confirmation, undo."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from clipdesk.duplicates.synth import make_tree
from clipdesk.imageio import read_photo
from clipdesk.store.models import Photo


def _sha(paths):
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture
def tree(window, tmp_path, coco_images, monkeypatch):
    """A generated tree registered in the window's library, and a trash in tmp_path."""
    from send2trash import plat_other

    data = tmp_path / "xdg"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(data))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(data / "Trash"))
    tree = make_tree(coco_images[:7], tmp_path / "photos", negatives=3)

    def add(s):
        for p in sorted(tree.truth):
            i = read_photo(p)
            s.add(Photo(path=p, size=i.size, mtime_ns=i.mtime_ns, content_hash=i.content_hash, format=i.format,
                        width=i.width, height=i.height, frames=1, taken_at=i.taken_at, camera_make=i.camera_make))

    window.controller.library.write(add)
    return tree


def test_find_trash_after_confirming_and_undo(qtbot, window, tree):
    before = _sha(tree.truth)
    window.duplicates_action.trigger()
    view = window._duplicates_view
    with qtbot.waitSignal(view.groups_shown, timeout=60000) as shown:
        view.find_button.click()
    assert shown.args == [4] and view.tree.topLevelItemCount() == 4
    assert "keep" in view.tree.topLevelItem(0).text(0)

    # The burst (similar) starts unticked: its shots are not copies.
    ticked = [view.tree.topLevelItem(i).checkState(0) == Qt.CheckState.Checked for i in range(4)]
    assert [g.tier != "similar" for g in view.groups] == ticked and not all(ticked)
    extras = sum(len(g.members) - 1 for g, on in zip(view.groups, ticked, strict=True) if on)
    asked = []
    view.confirm = lambda n, g: asked.append((n, g)) or False  # the user says no
    view.trash_button.click()
    assert asked == [(extras, 3)] and extras == 1 + 1 + 9 + 2 - 2 and view.status.text() == "Nothing moved."
    assert _sha(tree.truth) == before

    view.confirm = lambda n, g: True
    with qtbot.waitSignal(view.trashed, timeout=60000) as moved:
        view.trash_button.click()
    assert len(moved.args[0].moved) == extras and not any(os.path.exists(p) for p in moved.args[0].moved)

    with qtbot.waitSignal(view.restored, timeout=60000) as back:
        window.undo_trash_action.trigger()
    assert sorted(back.args[0].restored) == sorted(moved.args[0].moved)
    assert _sha(tree.truth) == before
