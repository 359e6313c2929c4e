"""The app as a user drives it: drop a folder, watch it index, search, select, find similar."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from clipdesk.config import CoreConfig
from clipdesk.gui.controller import LibraryController
from clipdesk.gui.main_window import PAGE_DROP, PAGE_GRID, MainWindow
from clipdesk.gui.settings import Settings


def drop(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.rect().center())
    # Qt 6: a drag-enter event takes a QPoint, a drop event a QPointF.
    enter = QDragEnterEvent(widget.rect().center(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    event = QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, event)


def test_first_launch_shows_the_drop_zone(window):
    assert window.pages.currentIndex() == PAGE_DROP
    assert "Drop your photo folders" in window.drop_zone.findChildren(type(window.status_label))[0].text()


def test_drop_index_search_select_and_find_similar(window, qtbot, photos):
    # That this thread stays free while indexing runs is tests/gui/test_gui_thread.py's subject
    # (thread assertions and event order rather than wall-clock gaps).
    controller = window.controller
    with qtbot.waitSignal(controller.index_finished, timeout=120000) as finished:
        drop(window, [photos])
    assert finished.args[0].new == 7 and finished.args[0].errors == 0

    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 7, timeout=10000)
    assert window.pages.currentIndex() == PAGE_GRID

    with qtbot.waitSignal(controller.search_finished, timeout=30000):
        window.search_bar.focus_query()
        QTest.keyClicks(window.search_bar.line_edit, "a dog on a beach")
        QTest.keyClick(window.search_bar.line_edit, Qt.Key_Return)
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 7)
    scores = [window.grid_model.item(r).score for r in range(7)]
    assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True)

    original = str(photos / sorted(p.name for p in photos.glob("0*.jpg"))[0])
    row = next(r for r in range(7) if window.grid_model.item(r).path == original)
    window.grid.setCurrentIndex(window.grid_model.index(row))
    qtbot.waitUntil(lambda: window.detail.path_label.text() == original)
    with Image.open(original) as im:
        assert f"{im.width}" in window.detail.dimensions_label.text()

    with qtbot.waitSignal(controller.search_finished, timeout=30000):
        window.find_similar(window.grid_model.item(row).photo_id)
    qtbot.waitUntil(lambda: window.grid_model.rowCount() > 0)
    assert window.grid_model.item(0).path.endswith("copy_small.jpg")

    window.back()
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 7 and window.grid_model.item(0).score is None)


def test_open_and_reveal_use_exact_file_urls(window, monkeypatch, tmp_path):
    import os

    from PySide6.QtGui import QDesktopServices

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(bytes(url.toEncoded())) or True)
    weird = os.fsdecode(str(tmp_path).encode() + b"/caf\xe9.jpg")
    window.open_paths([weird])
    window.reveal(weird)
    assert opened[0].endswith(b"caf%E9.jpg")
    assert opened[1].endswith(os.fsencode(tmp_path.name))


def test_pause_resume_and_cancel_from_the_status_bar(window, qtbot, photos):
    controller = window.controller
    with qtbot.waitSignal(controller.index_started, timeout=10000):
        window.add_paths([str(photos)])
    assert window.pause_button.isVisible() and window.cancel_button.isVisible()
    # index_started comes before the worker runs, so the job pauses at its first checkpoint.
    window.pause_button.setChecked(True)
    assert controller.paused and window.pause_button.text() == "Resume"
    window.pause_button.setChecked(False)
    assert not controller.paused
    window.pause_button.setChecked(True)
    with qtbot.waitSignal(controller.index_finished, timeout=60000) as done:
        window.cancel_button.click()  # a paused job wakes up to stop
    report = done.args[0]
    assert report.cancelled and report.embedded < 7
    qtbot.waitUntil(lambda: not window.progress.isVisible())
    assert "Stopped" in window.status_label.text()


def test_folders_appear_in_the_sidebar_and_removing_keeps_files(window, qtbot, photos, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    with qtbot.waitSignal(window.controller.index_finished, timeout=60000):
        window.add_paths([str(photos)])
    qtbot.waitUntil(lambda: window.sidebar.folder_item(str(photos)) is not None)
    before = sorted(p.name for p in photos.iterdir())
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    window.remove_folder(str(photos))
    qtbot.waitUntil(lambda: window.sidebar.folder_item(str(photos)) is None, timeout=10000)
    assert sorted(p.name for p in photos.iterdir()) == before
    qtbot.waitUntil(lambda: window.pages.currentIndex() == PAGE_DROP, timeout=10000)


def test_download_progress_then_missing_weights_banner(qtbot, tmp_path, monkeypatch):
    from clipdesk.engine import clip as clip_mod
    from clipdesk.engine import weights as weights_mod

    def fake_prefetch(spec, on_download):
        on_download(50_000_000, 200_000_000)  # the hub answered, then the connection dropped

    monkeypatch.setattr(clip_mod, "prefetch_weights", fake_prefetch)
    monkeypatch.setattr(weights_mod, "_REACHABLE", False)
    controller = LibraryController(tmp_path / "lib", model="vit-b-32", device="cpu")
    win = MainWindow(controller, Settings())
    qtbot.addWidget(win)
    win.show()
    states = []
    controller.model_state.connect(lambda state, message: states.append((state, message)))
    with qtbot.waitSignal(controller.model_state, timeout=60000, check_params_cb=lambda s, m: s == "missing"):
        controller.load_model()
    assert ("downloading", "Downloading the weights of vit-b-32 (first use only): 25% of 200 MB") in states
    assert win.banner.isVisible() and win.banner_button.isVisible()
    assert "vit-b-32" in win.banner.text() and "--model ViT-B-32/datacomp_xl_s13b_b90k:" in win.banner.text()
    assert win.model_label.text() == "Model weights missing"
    controller.shutdown()


def test_label_job_and_filtering_by_label(window, qtbot, photos):
    from clipdesk.store.models import Label, utcnow

    controller = window.controller
    with qtbot.waitSignal(controller.index_finished, timeout=60000):
        window.add_paths([str(photos)])
    with qtbot.waitSignal(controller.labels_finished, timeout=120000) as done:
        controller.run_labels()
    assert done.args[0].labelled == 7 and not done.args[0].cancelled
    assert "Labelled 7 photos" in window.status_label.text()
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 7)
    chosen = window.grid_model.item(2)
    with controller.library.session() as s, s.begin():
        s.add(Label(photo_id=chosen.photo_id, label="zz-test", score=0.5, source="user", status="accepted",
                    created_at=utcnow()))
    window.sidebar.label_selected.emit("zz-test")
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 1, timeout=10000)
    assert window.grid_model.item(0).photo_id == chosen.photo_id
    window.sidebar.folder_selected.emit("")  # "All photos" clears the label filter
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 7, timeout=10000)


def test_model_settings_change_the_precision_and_remember_it(qtbot, tmp_path, monkeypatch):
    from clipdesk.gui import main_window as main_window_mod

    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=4))
    settings = Settings()
    win = MainWindow(controller, settings)
    qtbot.addWidget(win)

    class Answered:  # the dialog as a user leaves it: same model and device, precision bf16
        def __init__(self, *args, **kwargs):
            assert kwargs["precision"] == "auto"

        def exec(self):
            return True

        selected_spec = staticmethod(lambda: "tiny-random")
        selected_device = staticmethod(lambda: "cpu")
        selected_precision = staticmethod(lambda: "bf16")

    monkeypatch.setattr(main_window_mod, "ModelDialog", Answered)
    with qtbot.waitSignal(controller.model_state, timeout=60000, check_params_cb=lambda s, m: s == "ready"):
        win.model_settings()
    assert controller.engine.key.endswith(":bf16") and controller.engine.precision == "bf16"
    assert Settings().model_precision == "bf16"
    controller.shutdown()
