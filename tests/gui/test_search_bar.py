"""SearchBar: typing + Enter, image drops (real QDropEvents), chip removal, filters."""

from __future__ import annotations

from datetime import datetime

import pytest
from PySide6.QtCore import QDate, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from clipdesk.gui.panels.search_panel import PLACEHOLDER, QueryRequest, SearchBar
from clipdesk.search import Filters


@pytest.fixture
def bar(qtbot):
    widget = SearchBar()
    qtbot.addWidget(widget)
    return widget


def _mime(*paths) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _drag_and_drop(target, mime: QMimeData) -> tuple[bool, bool]:
    """Send a real drag-enter then drop; return whether each was accepted."""
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False, False
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)
    return True, drop.isAccepted()


def test_typing_and_enter_submits_text_and_filters(bar, qtbot):
    assert bar.query_edit.placeholderText() == PLACEHOLDER
    bar.set_folders(["/photos/2023", "/photos/2024"])
    bar.folder_combo.setCurrentIndex(2)
    qtbot.keyClicks(bar.query_edit, "dog on a beach -people")
    with qtbot.waitSignal(bar.query_submitted, timeout=1000) as blocker:
        qtbot.keyClick(bar.query_edit, Qt.Key.Key_Return)
    request = blocker.args[0]
    assert isinstance(request, QueryRequest)
    assert request.text == "dog on a beach -people" == bar.text()
    assert request.images == []
    assert request.filters == Filters(folder="/photos/2024")


def test_enter_on_empty_query_does_nothing(bar, qtbot):
    with qtbot.assertNotEmitted(bar.query_submitted):
        qtbot.keyClick(bar.query_edit, Qt.Key.Key_Return)


def test_real_drop_of_an_image_sets_chip_and_submits(bar, qtbot, coco_images):
    photo = coco_images[0]
    with qtbot.waitSignal(bar.query_submitted, timeout=1000) as blocker:
        entered, dropped = _drag_and_drop(bar, _mime(photo))
    assert entered and dropped
    assert blocker.args[0].images == [str(photo)]
    assert bar.image() == str(photo)
    assert bar.image_chip_label.text() == photo.name
    assert not bar.image_chip.isHidden()


def test_drop_onto_the_line_edit_reaches_the_bar(bar, qtbot, coco_images):
    with qtbot.waitSignal(bar.query_submitted, timeout=1000):
        entered, dropped = _drag_and_drop(bar.query_edit, _mime(coco_images[1]))
    assert entered and dropped
    assert bar.image() == str(coco_images[1])


def test_non_image_drop_is_ignored(bar, qtbot, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    web = QMimeData()
    web.setUrls([QUrl("https://example.org/cat.jpg")])
    with qtbot.assertNotEmitted(bar.query_submitted):
        assert _drag_and_drop(bar, _mime(notes)) == (False, False)
        assert _drag_and_drop(bar, web) == (False, False)
    assert bar.image() is None
    assert bar.image_chip.isHidden()


def test_chip_removal_resubmits_text_or_clears(bar, qtbot, coco_images):
    bar.set_image(str(coco_images[0]))
    bar.query_edit.setText("beach")
    with qtbot.waitSignal(bar.query_submitted, timeout=1000) as blocker:
        qtbot.mouseClick(bar.image_chip_remove, Qt.MouseButton.LeftButton)
    assert blocker.args[0] == QueryRequest("beach", [], Filters())

    bar.query_edit.clear()
    bar.set_image(str(coco_images[0]))
    with qtbot.waitSignal(bar.cleared, timeout=1000), qtbot.assertNotEmitted(bar.query_submitted):
        qtbot.mouseClick(bar.image_chip_remove, Qt.MouseButton.LeftButton)
    assert bar.image() is None


def test_erasing_the_text_emits_cleared_once(bar, qtbot):
    qtbot.keyClicks(bar.query_edit, "ab")
    with qtbot.waitSignal(bar.cleared, timeout=1000):
        qtbot.keyClick(bar.query_edit, Qt.Key.Key_Backspace)
        qtbot.keyClick(bar.query_edit, Qt.Key.Key_Backspace)
    with qtbot.assertNotEmitted(bar.cleared):
        qtbot.keyClick(bar.query_edit, Qt.Key.Key_Backspace)  # already empty


def test_dates_map_to_start_and_end_of_day(bar):
    assert bar.filters() == Filters()
    bar.date_from_edit.setDate(QDate(2023, 6, 1))
    bar.date_to_edit.setDate(QDate(2023, 6, 30))
    assert bar.filters().date_from is None  # unchecked: no limit
    assert not bar.date_from_edit.isEnabled()
    bar.date_from_check.setChecked(True)
    bar.date_to_check.setChecked(True)
    assert bar.date_from_edit.isEnabled()
    f = bar.filters()
    assert f.date_from == datetime(2023, 6, 1, 0, 0, 0)
    assert f.date_to == datetime(2023, 6, 30, 23, 59, 59, 999999)


def test_type_filter(bar):
    bar.type_combo.setCurrentText("JPEG")
    assert bar.filters().types == ("jpeg", "mpo")
    bar.type_combo.setCurrentText("HEIC")
    assert "heif" in bar.filters().types
    bar.type_combo.setCurrentIndex(0)
    assert bar.filters().types == ()
    assert [bar.type_combo.itemText(i) for i in range(bar.type_combo.count())] == [
        "All types", "JPEG", "PNG", "HEIC", "WebP", "GIF", "TIFF", "BMP"]


def test_filter_change_reruns_an_active_query(bar, qtbot):
    bar.query_edit.setText("cat")
    with qtbot.waitSignal(bar.query_submitted, timeout=1000) as blocker:
        bar.type_combo.setCurrentText("PNG")
    assert blocker.args[0].filters.types == ("png",)
    bar.query_edit.setText("")
    with qtbot.waitSignal(bar.filters_changed, timeout=1000), qtbot.assertNotEmitted(bar.query_submitted):
        bar.type_combo.setCurrentText("GIF")


def test_set_folders_keeps_selection(bar, qtbot):
    bar.set_folders(["/a", "/b"])
    bar.folder_combo.setCurrentIndex(2)
    bar.set_folders(["/b", "/c"])
    assert bar.filters().folder == "/b"
    assert bar.folder_combo.itemText(0) == "All folders"
    with qtbot.waitSignal(bar.filters_changed, timeout=1000):
        bar.set_folders(["/c"])  # "/b" went away
    assert bar.filters().folder is None


def test_focus_query_selects_all(bar, qtbot):
    bar.show()
    qtbot.waitExposed(bar)
    bar.query_edit.setText("old query")
    bar.focus_query()
    assert bar.query_edit.selectedText() == "old query"


def test_set_text_is_silent(bar, qtbot):
    with qtbot.assertNotEmitted(bar.query_submitted), qtbot.assertNotEmitted(bar.cleared):
        bar.set_text("saved search")
    assert bar.request().text == "saved search"
    with qtbot.waitSignal(bar.cleared, timeout=1000):
        bar.query_edit.selectAll()
        qtbot.keyClick(bar.query_edit, Qt.Key.Key_Delete)
