"""The caption panel: caption-selected writes captions, a hand edit survives re-captioning, cancel resumes."""

from __future__ import annotations

import shutil
import threading

import pytest
from PySide6.QtCore import Qt

from clipdesk.captions.store import photo_captions
from clipdesk.config import CoreConfig
from clipdesk.gui.controller import LibraryController
from clipdesk.gui.panels.caption_panel import NO_PHOTO, CaptionPanel


@pytest.fixture
def indexed(qtbot, tmp_path, coco_images):
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in coco_images[:3]:
        shutil.copy(src, folder / src.name)
    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=4))
    with qtbot.waitSignal(controller.index_finished, timeout=120000):
        controller.add_roots([str(folder)])
    with controller.library.session() as s:
        from sqlalchemy import select

        from clipdesk.store.models import Photo

        ids = list(s.scalars(select(Photo.id).order_by(Photo.id)))
    yield controller, ids
    controller.shutdown()


def _panel(qtbot, controller, selected):
    panel = CaptionPanel(controller, selected_ids=lambda: list(selected))
    panel.caption_model, panel.max_len = "tiny-coca", 6  # test-only CoCa: fast, meaningless words
    qtbot.addWidget(panel)
    return panel


def test_caption_selected_writes_captions_and_the_hand_edit_survives(qtbot, indexed):
    controller, ids = indexed
    selected = ids[:2]
    panel = _panel(qtbot, controller, [])
    assert panel.auto_label.text() == NO_PHOTO and not panel.edit.isEnabled()
    qtbot.mouseClick(panel.caption_selected_button, Qt.LeftButton)  # nothing selected: no job
    assert not panel.running and "Select photos" in panel.status.text()
    panel.selected_ids = lambda: list(selected)
    # The job waits at its start until the cancel is in: on a loaded machine the worker could otherwise
    # caption all three photos before the GUI thread gets to cancel.
    gate, load = threading.Event(), panel._captioner
    panel._captioner = lambda *a: (gate.wait(30), load(*a))[1]
    with qtbot.waitSignal(panel.job_finished, timeout=60000) as done:
        panel.run_job(None)
        panel.cancel()  # before the first batch: nothing written, the next run does it all
        gate.set()
    assert done.args[0].cancelled and done.args[0].captioned == 0
    panel._captioner = load
    qtbot.waitUntil(lambda: not panel.running)

    with qtbot.waitSignal(panel.job_finished, timeout=60000) as done:
        qtbot.mouseClick(panel.caption_selected_button, Qt.LeftButton)
        assert panel.running and not panel.caption_library_button.isEnabled()
    assert (done.args[0].captioned, done.args[0].failed) == (2, 0)
    qtbot.waitUntil(lambda: not panel.running)
    for pid in selected:
        assert [c.source for c in photo_captions(controller.library, pid)] == ["auto"]
    assert photo_captions(controller.library, ids[2]) == []

    panel.show_photo(ids[0])
    qtbot.waitUntil(lambda: "confidence" in panel.auto_label.text())
    assert "tiny-coca" in panel.model_label.text()
    panel.edit.setText("My sister's birthday cake")
    with qtbot.waitSignal(panel.captions_changed, timeout=10000):
        qtbot.mouseClick(panel.save_button, Qt.LeftButton)

    with qtbot.waitSignal(panel.job_finished, timeout=60000):  # caption the same photos again
        panel.run_job(selected)
    qtbot.waitUntil(lambda: not panel.running)
    with qtbot.waitSignal(panel.job_finished, timeout=60000) as done:  # and the rest of the library
        qtbot.mouseClick(panel.caption_library_button, Qt.LeftButton)
    assert done.args[0].todo == 1  # only the photo not captioned yet
    caps = photo_captions(controller.library, ids[0])
    assert [(c.source, c.text) for c in caps][0] == ("user", "My sister's birthday cake")
    assert [c.source for c in caps] == ["user", "auto"]
    panel.show_photo(ids[0])
    qtbot.waitUntil(lambda: panel.edit.text() == "My sister's birthday cake")


def test_main_window_panel_follows_the_selected_photo(qtbot, indexed):
    from clipdesk.captions.store import set_user_caption
    from clipdesk.gui.main_window import MainWindow
    from clipdesk.gui.settings import Settings

    controller, ids = indexed
    set_user_caption(controller.library, ids[1], "Lunch at the lake")
    win = MainWindow(controller, Settings())
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.grid_model.rowCount() == 3)
    win.grid.setCurrentIndex(win.grid_model.index(win.grid_model.row_of(ids[1])))
    qtbot.waitUntil(lambda: win.captions.edit.text() == "Lunch at the lake")
    assert win.captions.auto_label.text() == "No automatic caption yet."
