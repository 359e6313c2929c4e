"""The label review queue, the label editor and XMP export, driven as a user would.

A constructed text encoder stands in for the model (known answers): axes
0 = dog, 1 = cat, 5 = kayak, 7 = the generic background prompts. Photos are
real little JPEGs (thumbnails, sidecars) with constructed vectors.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from sqlalchemy import select

from clipdesk.config import CoreConfig
from clipdesk.gui.controller import LibraryController
from clipdesk.gui.main_window import MainWindow
from clipdesk.gui.settings import Settings
from clipdesk.labels.scoring import BACKGROUND_PROMPTS
from clipdesk.labels.vocab import USER_FILE
from clipdesk.labels.xmp import _read
from clipdesk.store.models import Label, Photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _vecdb import add_photos, unit  # noqa: E402

KEY = "fake:gui-labels"
DIM = 8
WORDS = {"a wagging tail": 0, "a wet nose": 0, "pointed ears": 1, "a narrow boat with a paddle": 5}


def e(i, w=1.0):
    v = np.zeros(DIM)
    v[i] = w
    return v


class FakeEngine:
    """Text vectors by keyword; unknown phrases get a fixed off-axis vector (nothing fires on it)."""

    key = KEY

    def encode_text(self, texts):
        out = []
        for t in texts:
            if t in BACKGROUND_PROMPTS:
                out.append(e(7))
            else:
                axis = next((a for w, a in WORDS.items() if w in t), None)
                out.append(e(axis) + e(2, 0.2 if "nose" in t else 0) if axis is not None else e(6))
        return unit(np.asarray(out, np.float32)) if out else np.zeros((0, DIM), np.float32)


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "test.yaml").write_text(
        "labels:\n"
        "  - {name: dog, parent: animal, descriptors: [a wagging tail, a wet nose]}\n"
        "  - {name: cat, parent: animal, descriptors: [pointed ears]}\n", encoding="utf-8")
    monkeypatch.setattr("clipdesk.labels.vocab.SHIPPED", folder)
    return folder


@pytest.fixture
def window(qtbot, tmp_path, shipped):
    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=4))
    controller.engine = controller.search_engine = FakeEngine()
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    kinds = ["dog"] * 4 + ["cat"] * 3 + ["kayak"] * 3 + ["nothing"] * 2
    axis = {"dog": 0, "cat": 1, "kayak": 5, "nothing": 7}
    items = []
    for i, kind in enumerate(kinds):
        path = photos / f"{kind}{i}.jpg"
        Image.new("RGB", (40, 30), (20 * i, 100, 50)).save(path)
        vec = e(axis[kind]) + e(7, 0.3 + 0.04 * i) + rng.normal(0, 0.03, DIM)
        items.append({"path": str(path), "vector": vec})
    ids = add_photos(controller.library, KEY, items)
    win = MainWindow(controller, Settings())
    qtbot.addWidget(win)
    win.show()
    win.photo_ids = dict(zip([Path(it["path"]).stem for it in items], ids, strict=True))
    yield win
    controller.shutdown()


def run_labels(qtbot, window):
    with qtbot.waitSignal(window.controller.labels_finished, timeout=30000) as done:
        window.controller.run_labels()
    return done.args[0]


def rows(window) -> dict[tuple[int, str], str]:
    with window.controller.library.session() as s:
        return {(r.photo_id, r.label): r.status for r in s.scalars(select(Label))}


def sidebar_count(window, label: str) -> str | None:
    header = window.sidebar.labels_header
    for i in range(header.childCount()):
        if header.child(i).text(0) == label:
            return header.child(i).text(1)
    return None


def test_review_queue_keyboard_accept_reject_and_no_comeback(qtbot, window):
    report = run_labels(qtbot, window)
    assert report.with_labels == 7  # 4 dogs + 3 cats; kayaks and the rest: none
    qtbot.waitUntil(lambda: sidebar_count(window, "dog") == "4")
    window.review_action.trigger()  # Tools ▸ Review labels…
    dialog = window.labels.review_dialog
    qtbot.waitUntil(lambda: dialog.list.count() == 24, timeout=10000)  # 12 photos x 2 labels, none decided
    margins = [abs(dialog.list.item(i).data(Qt.UserRole).margin) for i in range(dialog.list.count())]
    assert margins == sorted(margins)  # most uncertain first
    qtbot.waitUntil(lambda: not dialog.list.item(0).icon().isNull())  # thumbnails arrive
    assert dialog.preview.pixmap() is not None and not dialog.preview.pixmap().isNull()

    proposed_dog = next(i for i in range(dialog.list.count())
                        if dialog.list.item(i).data(Qt.UserRole).proposed
                        and dialog.list.item(i).data(Qt.UserRole).label == "dog")
    dialog.list.setCurrentRow(proposed_dog)
    rejected = dialog.current()
    with qtbot.waitSignal(window.controller.feedback_saved):
        qtbot.keyClick(dialog.list, Qt.Key_R)
    assert rows(window)[(rejected.photo_id, "dog")] == "rejected"
    assert dialog.list.count() == 23 and dialog.current() is not None
    qtbot.waitUntil(lambda: sidebar_count(window, "dog") == "3")  # the sidebar follows

    skipped = dialog.current()
    qtbot.keyClick(dialog.list, Qt.Key_Space)
    assert dialog.current() != skipped and (skipped.photo_id, skipped.label) not in {
        k for k, v in rows(window).items() if v != "proposed"}
    accepted = dialog.current()
    with qtbot.waitSignal(window.controller.feedback_saved):
        qtbot.keyClick(dialog.list, Qt.Key_Y)
    assert rows(window)[(accepted.photo_id, accepted.label)] == "accepted"
    assert dialog.answers == 2 and "2 answered" in dialog.status.text()

    # Relearn: label the library again; the rejected label stays rejected and leaves the queue.
    with qtbot.waitSignal(window.controller.labels_finished, timeout=30000):
        dialog.relearn_button.click()
    qtbot.waitUntil(lambda: dialog.list.count() == 22, timeout=10000)
    after = rows(window)
    assert after[(rejected.photo_id, "dog")] == "rejected"
    assert after[(accepted.photo_id, accepted.label)] == "accepted"
    queued = {(dialog.list.item(i).data(Qt.UserRole).photo_id, dialog.list.item(i).data(Qt.UserRole).label)
              for i in range(dialog.list.count())}
    assert (rejected.photo_id, "dog") not in queued and (accepted.photo_id, accepted.label) not in queued
    dialog.close()


def test_sidebar_label_menu_opens_a_review_of_that_label(qtbot, window):
    run_labels(qtbot, window)
    qtbot.waitUntil(lambda: sidebar_count(window, "cat") == "3")
    header = window.sidebar.labels_header
    cat = next(header.child(i) for i in range(header.childCount()) if header.child(i).text(0) == "cat")
    menu = window.sidebar.context_menu_for(cat)
    review = next(a for a in menu.actions() if a.text() == "Review 'cat'…")
    review.trigger()
    dialog = window.labels.review_dialog
    qtbot.waitUntil(lambda: dialog.list.count() == 12, timeout=10000)
    assert {dialog.list.item(i).data(Qt.UserRole).label for i in range(12)} == {"cat"}
    dialog.close()


def test_label_editor_validates_and_a_new_label_works_at_once(qtbot, window, tmp_path):
    run_labels(qtbot, window)
    window.label_editor_action.trigger()  # Tools ▸ Label editor…
    editor = window.labels.label_editor
    assert editor.entry("dog").state == "shipped"
    editor.name.setText("Kayak")
    editor.parent_edit.setText("vehicle")
    assert not editor.save()  # no descriptors yet
    assert editor.problems.isVisible() and "at least one descriptor" in editor.problems.text()
    assert not (window.controller.library.root / USER_FILE).exists()
    editor.descriptors.setPlainText("a narrow boat with a paddle\n\n")
    with qtbot.waitSignal(editor.vocabulary_changed):
        editor.save_button.click()
    assert editor.entry("kayak").state == "user" and editor.entry("kayak").label.path == "vehicle/kayak"
    assert "kayak" in (window.controller.library.root / USER_FILE).read_text(encoding="utf-8")
    assert editor.save_button.text() == "Save changes"  # now editing the saved label
    with qtbot.waitSignal(window.controller.labels_finished, timeout=30000) as done:
        editor.relabel_button.click()
    assert done.args[0].todo == 12  # a new vocabulary: every photo re-decided, none re-embedded
    kayaks = {window.photo_ids[f"kayak{i}"] for i in (7, 8, 9)}
    assert {pid for (pid, label), _ in rows(window).items() if label == "kayak"} == kayaks
    qtbot.waitUntil(lambda: sidebar_count(window, "kayak") == "3")

    # Editing a shipped label overrides it; deleting the user label takes it away.
    editor.select("cat")
    editor.descriptors.setPlainText("pointed ears\nwhiskers")
    editor.save_button.click()
    assert editor.entry("cat").state == "edited" and editor.remove_button.text() == "Revert to shipped"
    editor.select("kayak")
    editor.remove_button.click()
    assert editor.entry("kayak") is None
    editor.close()


def test_xmp_export_from_the_menu(qtbot, window, monkeypatch):
    run_labels(qtbot, window)
    with window.controller.library.session() as s:
        paths = {p.id: Path(p.path) for p in s.scalars(select(Photo))}
    before = {pid: hashlib.sha256(p.read_bytes()).hexdigest() for pid, p in paths.items()}
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Cancel)
    window.export_xmp_action.trigger()
    assert not any(p.with_name(p.name + ".xmp").exists() for p in paths.values())

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.export_xmp_action.trigger()
    with qtbot.waitSignal(window.labels.xmp_export.finished, timeout=10000) as done:
        pass
    assert len(done.args[0].written) == 7 and "Wrote 7 XMP sidecars" in window.status_label.text()
    dog = paths[window.photo_ids["dog0"]]
    ours, subjects, hierarchical = _read(dog.with_name(dog.name + ".xmp"))
    assert ours and subjects == ["dog"] and hierarchical == ["animal|dog"]
    assert not any(p.with_name(p.name + ".xmp").exists() for p in paths.values() if "kayak" in p.name)
    assert {pid: hashlib.sha256(p.read_bytes()).hexdigest() for pid, p in paths.items()} == before


def test_detail_panel_yes_no_links(qtbot, window):
    run_labels(qtbot, window)
    dog, cat = window.photo_ids["dog0"], window.photo_ids["cat4"]
    panel = window.detail
    with qtbot.waitSignal(panel.shown, check_params_cb=lambda pid: pid == dog):
        window._show_details(dog)  # the details are read on the IO lane
    assert not panel.feedback_label.isHidden() and "dog: <a href='y:0'>yes</a>" in panel.feedback_label.text()
    with qtbot.waitSignal(window.controller.feedback_saved):
        panel.feedback_label.linkActivated.emit("n:0")
    assert rows(window)[(dog, "dog")] == "rejected"
    qtbot.waitUntil(lambda: panel.labels_label.text() == "")  # refreshed: a rejected label is not shown
    with qtbot.waitSignal(panel.shown, check_params_cb=lambda pid: pid == cat):
        window._show_details(cat)
    with qtbot.waitSignal(window.controller.feedback_saved):
        panel.feedback_label.linkActivated.emit("y:0")
    assert rows(window)[(cat, "cat")] == "accepted"
    qtbot.waitUntil(lambda: panel.feedback_label.isHidden())  # nothing left to confirm
