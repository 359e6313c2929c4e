"""Sidebar: folder rows and states, labels, saved searches, and every signal."""

from __future__ import annotations

from datetime import datetime

import pytest
from PySide6.QtCore import Qt

from clipdesk.gui.sidebar import ALL_PHOTOS, REMOVE_FOLDER_TEXT, Sidebar
from clipdesk.store.queries import FolderSummary

SCANNED = datetime(2024, 5, 1, 12, 0)


@pytest.fixture
def sidebar(qtbot):
    widget = Sidebar()
    qtbot.addWidget(widget)
    widget.set_folders([
        FolderSummary(1, "/home/me/Pictures/Holidays", 1234, 1200, True, SCANNED),
        FolderSummary(2, "/mnt/nas/Photos", 80, 10, False, SCANNED),
        FolderSummary(3, "/home/me/New", 0, 0, False, None),
    ])
    widget.set_labels([("dog", 120), ("beach", 1500)])
    widget.set_saved_searches(["sunset -people", "birthday cake"])
    return widget


def _rows(header):
    return [(header.child(i).text(0), header.child(i).text(1)) for i in range(header.childCount())]


def test_folder_rows(sidebar):
    assert _rows(sidebar.folders_header) == [
        (ALL_PHOTOS, ""),
        ("Holidays", "1,234 photos"),
        ("Photos", "80 photos · scan incomplete"),
        ("New", "not scanned yet"),
    ]
    assert sidebar.folder_item("/mnt/nas/Photos").toolTip(0).startswith("/mnt/nas/Photos")


def test_folder_state_override_and_restore(sidebar):
    sidebar.set_folder_state("/home/me/Pictures/Holidays", "indexing 120/500")
    assert sidebar.folder_item("/home/me/Pictures/Holidays").text(1) == "indexing 120/500"
    # A refresh of the summaries keeps the running state...
    sidebar.set_folders([FolderSummary(1, "/home/me/Pictures/Holidays", 1300, 1200, False, SCANNED)])
    assert sidebar.folder_item("/home/me/Pictures/Holidays").text(1) == "indexing 120/500"
    # ...until the job ends.
    sidebar.set_folder_state("/home/me/Pictures/Holidays", "")
    assert sidebar.folder_item("/home/me/Pictures/Holidays").text(1) == "1,300 photos · scan incomplete"
    sidebar.set_folder_state("/not/in/library", "indexing…")  # unknown path: nothing to show, no error


def test_labels_and_saved_searches(sidebar):
    assert _rows(sidebar.labels_header) == [("dog", "120"), ("beach", "1,500")]
    assert _rows(sidebar.saved_header) == [("sunset -people", ""), ("birthday cake", "")]


def test_selecting_rows_emits(sidebar, qtbot):
    with qtbot.waitSignal(sidebar.folder_selected, timeout=1000) as blocker:
        sidebar.tree.setCurrentItem(sidebar.folder_item("/mnt/nas/Photos"))
    assert blocker.args == ["/mnt/nas/Photos"]
    with qtbot.waitSignal(sidebar.folder_selected, timeout=1000) as blocker:
        sidebar.tree.setCurrentItem(sidebar.all_photos_item)
    assert blocker.args == [""]
    with qtbot.waitSignal(sidebar.label_selected, timeout=1000) as blocker:
        sidebar.tree.setCurrentItem(sidebar.labels_header.child(1))
    assert blocker.args == ["beach"]
    with qtbot.waitSignal(sidebar.saved_search_selected, timeout=1000) as blocker:
        sidebar.tree.setCurrentItem(sidebar.saved_header.child(0))
    assert blocker.args == ["sunset -people"]


def test_clicking_a_row(sidebar, qtbot):
    sidebar.show()
    qtbot.waitExposed(sidebar)
    item = sidebar.labels_header.child(0)
    rect = sidebar.tree.visualItemRect(item)
    with qtbot.waitSignal(sidebar.label_selected, timeout=1000) as blocker:
        qtbot.mouseClick(sidebar.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == ["dog"]
    # Enter on the current row emits again (re-run).
    with qtbot.waitSignal(sidebar.label_selected, timeout=1000):
        qtbot.keyClick(sidebar.tree, Qt.Key.Key_Return)


def test_headers_are_not_choices(sidebar, qtbot):
    with qtbot.assertNotEmitted(sidebar.folder_selected), qtbot.assertNotEmitted(sidebar.label_selected):
        sidebar.tree.setCurrentItem(sidebar.labels_header)
    assert sidebar.current() is None


def test_refresh_keeps_selection_silently(sidebar, qtbot):
    sidebar.tree.setCurrentItem(sidebar.labels_header.child(1))
    with qtbot.assertNotEmitted(sidebar.label_selected):
        sidebar.set_labels([("beach", 1501), ("cat", 3)])
    assert sidebar.current() == ("label", "beach")
    with qtbot.assertNotEmitted(sidebar.label_selected):
        sidebar.set_labels([("cat", 3)])
    assert sidebar.current() is None


def test_programmatic_select_is_silent(sidebar, qtbot):
    with qtbot.assertNotEmitted(sidebar.folder_selected):
        sidebar.select("folder", "/mnt/nas/Photos")
    assert sidebar.current() == ("folder", "/mnt/nas/Photos")
    sidebar.clear_selection()
    assert sidebar.current() is None


def test_add_folder_button_and_menu(sidebar, qtbot):
    with qtbot.waitSignal(sidebar.add_folder_requested, timeout=1000):
        qtbot.mouseClick(sidebar.add_folder_button, Qt.MouseButton.LeftButton)
    menu = sidebar.context_menu_for(sidebar.folders_header)
    with qtbot.waitSignal(sidebar.add_folder_requested, timeout=1000):
        menu.actions()[0].trigger()


def test_remove_folder_from_context_menu(sidebar, qtbot):
    menu = sidebar.context_menu_for(sidebar.folder_item("/mnt/nas/Photos"))
    (action,) = menu.actions()
    assert action.text() == REMOVE_FOLDER_TEXT
    assert "not touched" in action.text()
    with qtbot.waitSignal(sidebar.remove_folder_requested, timeout=1000) as blocker:
        action.trigger()
    assert blocker.args == ["/mnt/nas/Photos"]
    # "All photos" cannot be removed.
    assert [a.text() for a in sidebar.context_menu_for(sidebar.all_photos_item).actions()] == ["Add folder…"]


def test_remove_saved_search_from_context_menu(sidebar, qtbot):
    menu = sidebar.context_menu_for(sidebar.saved_header.child(1))
    with qtbot.waitSignal(sidebar.remove_saved_search_requested, timeout=1000) as blocker:
        menu.actions()[0].trigger()
    assert blocker.args == ["birthday cake"]


def test_label_menu_reviews_or_edits_that_label(sidebar, qtbot):
    label = sidebar.labels_header.child(0).text(0)
    review, edit = sidebar.context_menu_for(sidebar.labels_header.child(0)).actions()
    assert (review.text(), edit.text()) == (f"Review '{label}'…", f"Edit '{label}'…")
    with qtbot.waitSignal(sidebar.review_labels_requested, timeout=1000) as blocker:
        review.trigger()
    assert blocker.args == [label]
    with qtbot.waitSignal(sidebar.edit_labels_requested, timeout=1000) as blocker:
        edit.trigger()
    assert blocker.args == [label]
    review_all, _ = sidebar.context_menu_for(sidebar.labels_header).actions()
    with qtbot.waitSignal(sidebar.review_labels_requested, timeout=1000) as blocker:
        review_all.trigger()
    assert blocker.args == [""]
