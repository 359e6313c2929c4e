"""The thumbnail grid: lazy loading over 100k rows, bounded pixmap cache, drag out, actions."""

from __future__ import annotations

import os
import threading

import pytest
from PIL import Image
from PySide6.QtCore import QModelIndex, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence, QPixmap

import clipdesk.gui.thumbnails as thumbnails_mod
from clipdesk.gui.models.thumbnail_model import ResultItem, ThumbnailModel
from clipdesk.gui.thumbnails import ThumbnailLoader
from clipdesk.gui.views.thumbnail_grid import FIND_SIMILAR_SHORTCUT, ThumbnailGrid

ROWS = 100_000
DECORATION = Qt.ItemDataRole.DecorationRole


class RecordingLoader(ThumbnailLoader):
    """A real loader that remembers which ids were asked for."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[int] = []

    def request(self, photo_id: int, path: str) -> None:
        self.asked.append(photo_id)
        super().request(photo_id, path)


@pytest.fixture(scope="session")
def photo_paths(tmp_path_factory) -> list[str]:
    """A few hundred distinct tiny photos, reused across rows by path."""
    root = tmp_path_factory.mktemp("photos")
    paths = []
    for i in range(300):
        path = root / f"p{i:03d}.png"
        Image.new("RGB", (40 + i % 7, 30), (i % 256, (7 * i) % 256, 90)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def gate(monkeypatch):
    """Hold every thumbnail load until released, so requests stay queued."""
    release = threading.Event()
    real = thumbnails_mod.cached_thumbnail

    def held(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(thumbnails_mod, "cached_thumbnail", held)
    yield release
    release.set()


@pytest.fixture
def loader(tmp_path, qapp):
    loader = RecordingLoader(tmp_path / "thumbs", size=64)
    yield loader
    loader.shutdown()


def items_for(paths: list[str], n: int, score: float | None = None) -> list[ResultItem]:
    return [ResultItem(i, paths[i % len(paths)], score) for i in range(n)]


def show_grid(qtbot, model: ThumbnailModel) -> ThumbnailGrid:
    grid = ThumbnailGrid()
    qtbot.addWidget(grid)
    grid.setModel(model)
    grid.resize(800, 600)
    grid.show()
    qtbot.waitExposed(grid)
    return grid


def wait_laid_out(qtbot, grid: ThumbnailGrid) -> None:
    """Batched layout: wait until the last row has a place."""
    last = grid.model().index(grid.model().rowCount() - 1, 0)
    qtbot.waitUntil(lambda: grid.visualRect(last).isValid() and grid.verticalScrollBar().maximum() > 0, timeout=10000)


def wait_settled(qtbot, grid: ThumbnailGrid, loader: ThumbnailLoader) -> None:
    """Visible rows computed for the current scroll position and all loads done."""
    qtbot.waitUntil(lambda: grid.visible_rows_cache == grid.visible_rows() and len(grid.visible_rows()) > 0)
    qtbot.waitUntil(lambda: loader.pending_count == 0, timeout=10000)


def is_placeholder(model: ThumbnailModel, value) -> bool:
    return isinstance(value, QPixmap) and value.cacheKey() == model._placeholder(False).cacheKey()


# -- 100k rows: only what is on screen is loaded -------------------------------------------


def test_only_visible_rows_are_requested(qtbot, loader, photo_paths):
    model = ThumbnailModel(loader)
    model.set_items(items_for(photo_paths, ROWS))
    grid = show_grid(qtbot, model)
    wait_laid_out(qtbot, grid)
    wait_settled(qtbot, grid, loader)
    visible = grid.visible_rows()
    assert 10 <= len(visible) <= 200
    assert len(visible) <= loader.requested_count <= 300
    assert set(loader.asked) <= set(range(visible.stop + 20))
    assert model.cached_count == loader.requested_count


def test_scrolling_requests_new_rows_and_drops_stale_queued_ones(qtbot, loader, photo_paths, gate):
    model = ThumbnailModel(loader)
    model.set_items(items_for(photo_paths, ROWS))
    grid = show_grid(qtbot, model)
    wait_laid_out(qtbot, grid)
    qtbot.waitUntil(lambda: grid.visible_rows_cache == grid.visible_rows() and loader.requested_count > 0)
    top = set(grid.visible_rows())
    assert set(loader.asked) >= top

    bar = grid.verticalScrollBar()
    bar.setValue(bar.maximum() // 2)
    qtbot.waitUntil(lambda: grid.visible_rows_cache == grid.visible_rows() and grid.visible_rows().start > ROWS // 3)
    middle = set(grid.visible_rows())
    assert set(loader.asked) >= middle
    # Only the middle rows are still queued; at most the two loads held by the gate are from the top.
    queued = set(loader._work.queued)
    assert queued <= middle and len(loader._work.in_flight) <= 2
    assert loader.requested_count == len(set(loader.asked))  # each id asked once while pending

    gate.set()
    qtbot.waitUntil(lambda: loader.pending_count == 0, timeout=10000)
    assert loader.started_count < loader.requested_count  # dropped requests never ran
    assert loader.started_count <= len(middle) + 2


def test_pixmap_cache_stays_bounded_while_scrolling(qtbot, loader, photo_paths):
    model = ThumbnailModel(loader, cache_limit=120)
    model.set_items(items_for(photo_paths, ROWS))
    grid = show_grid(qtbot, model)
    wait_laid_out(qtbot, grid)
    bar = grid.verticalScrollBar()
    peak = 0
    for _page in range(8):
        wait_settled(qtbot, grid, loader)
        peak = max(peak, model.cached_count)
        bar.setValue(bar.value() + bar.pageStep())
    wait_settled(qtbot, grid, loader)
    assert loader.requested_count > 200  # many more thumbnails went through than the cache holds
    assert peak <= 120 and model.cached_count == 120
    # The rows on screen are the most recently used, so they are still cached.
    assert all(not is_placeholder(model, model.index(r).data(DECORATION)) for r in grid.visible_rows())


# -- one real load -------------------------------------------------------------------------


def test_loaded_thumbnail_replaces_placeholder_for_that_row_only(qtbot, loader, photo_paths):
    model = ThumbnailModel(loader)
    model.set_items(items_for(photo_paths, 10))
    changed: list[tuple[int, int, list]] = []
    model.dataChanged.connect(lambda a, b, roles: changed.append((a.row(), b.row(), list(roles))))
    index = model.index(3)
    with qtbot.waitSignal(loader.loaded, timeout=10000) as blocker:
        assert is_placeholder(model, index.data(DECORATION))
        index.data(DECORATION)  # asked again while loading: not requested twice
    photo_id, image = blocker.args
    assert photo_id == 3 and isinstance(image, QImage) and not image.isNull()
    assert loader.requested_count == 1
    qtbot.waitUntil(lambda: bool(changed))
    assert [(a, b) for a, b, _ in changed] == [(3, 3)]
    pixmap = index.data(DECORATION)
    assert isinstance(pixmap, QPixmap) and not is_placeholder(model, pixmap)
    assert (pixmap.width(), pixmap.height()) == (Image.open(photo_paths[3]).size)


def test_broken_photo_gets_a_reason_and_is_not_requested_again(qtbot, loader, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    model = ThumbnailModel(loader)
    model.set_items([ResultItem(7, str(bad))])
    with qtbot.waitSignal(loader.failed, timeout=10000) as blocker:
        model.index(0).data(DECORATION)
    assert blocker.args[0] == 7 and "not an image" in blocker.args[1]
    qtbot.waitUntil(lambda: "Cannot show" in model.index(0).data(Qt.ItemDataRole.ToolTipRole))
    model.index(0).data(DECORATION)
    assert loader.requested_count == 1


def test_size_change_reloads_smaller(qtbot, loader, tmp_path, photo_paths):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (400, 300), "green").save(big)
    model = ThumbnailModel(loader)
    model.set_items([ResultItem(1, str(big))])
    with qtbot.waitSignal(loader.loaded, timeout=10000):
        model.index(0).data(DECORATION)
    assert model.index(0).data(DECORATION).width() == 64
    grid = ThumbnailGrid()
    qtbot.addWidget(grid)
    grid.setModel(model)
    assert grid.thumb_size == 64
    with qtbot.waitSignal(loader.size_changed):
        grid.set_thumb_size(32)  # the grid tells the loader
    assert model.cached_count == 0
    with qtbot.waitSignal(loader.loaded, timeout=10000) as blocker:
        model.index(0).data(DECORATION)
    assert (blocker.args[1].width(), blocker.args[1].height()) == (32, 24)


def test_keep_only_drops_queued_requests(qtbot, loader, photo_paths, gate):
    for i in range(12):
        loader.request(i, photo_paths[i])
    qtbot.waitUntil(lambda: len(loader._work.in_flight) == 2)  # both workers held by the gate
    assert loader.keep_only({5, 6}) == 8
    gate.set()
    qtbot.waitUntil(lambda: loader.pending_count == 0, timeout=10000)
    assert (loader.requested_count, loader.started_count) == (12, 4)


# -- items, text, drag out -----------------------------------------------------------------


def test_text_roles_and_row_lookup(qtbot, loader, photo_paths):
    model = ThumbnailModel(loader)
    model.set_items([ResultItem(10, photo_paths[0], 0.31234), ResultItem(11, photo_paths[1], relevant=False)])
    inserted = []
    model.rowsInserted.connect(lambda parent, first, last: inserted.append((first, last)))
    model.append_items(items_for(photo_paths, 600)[20:])
    assert inserted == [(2, 581)]
    assert model.index(0).data() == "p000.png\n0.312"
    assert model.index(1).data() == "p001.png"
    assert model.index(0).data(Qt.ItemDataRole.ToolTipRole) == photo_paths[0]
    assert model.index(1).data(Qt.ItemDataRole.ForegroundRole) is not None
    assert model.index(0).data(ThumbnailModel.PhotoIdRole) == 10
    assert model.index(0).data(ThumbnailModel.ScoreRole) == pytest.approx(0.31234)
    assert model.row_of(11) == 1 and model.row_of(599) == 581 and model.row_of(5) is None
    assert model.item(581).photo_id == 599
    model.clear()
    assert model.rowCount() == 0 and model.row_of(10) is None


def test_mime_data_gives_file_urls_even_for_non_utf8_names(qtbot, loader, tmp_path):
    plain = tmp_path / "café beach.png"
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.png")  # Latin-1 bytes, not UTF-8
    for path in (plain, odd):
        Image.new("RGB", (8, 8)).save(path, format="PNG")
    model = ThumbnailModel(loader)
    model.set_items([ResultItem(1, str(plain)), ResultItem(2, odd)])
    index0, index1 = model.index(0), model.index(1)
    assert model.flags(index0) & Qt.ItemFlag.ItemIsDragEnabled
    assert not model.supportedDragActions() & Qt.DropAction.MoveAction
    assert model.mimeTypes() == ["text/uri-list"]
    mime = model.mimeData([index1, index0, index1])
    assert mime.urls()[0] == QUrl.fromLocalFile(str(plain))
    raw = bytes(mime.data("text/uri-list"))
    assert raw.split(b"\r\n")[:2] == [
        QUrl.fromLocalFile(str(plain)).toEncoded().data(),
        b"file://" + os.fsencode(str(tmp_path)).replace(b" ", b"%20") + b"/caf%E9.png",
    ]
    # Shown with a replacement character, not silently without the byte.
    assert index1.data() == "caf\ufffd.png"
    assert index1.data(Qt.ItemDataRole.ToolTipRole).endswith("/caf\ufffd.png")
    assert model.item(1).path == odd  # the exact name stays available


# -- the view: actions, keys, current photo ------------------------------------------------


@pytest.fixture
def small_grid(qtbot, loader, photo_paths):
    model = ThumbnailModel(loader)
    model.set_items(items_for(photo_paths, 20))
    return show_grid(qtbot, model)


def select_rows(grid: ThumbnailGrid, rows: list[int], current: int) -> None:
    sel = grid.selectionModel()
    for row in rows:
        sel.select(grid.model().index(row), sel.SelectionFlag.Select)
    sel.setCurrentIndex(grid.model().index(current), sel.SelectionFlag.NoUpdate)


def test_context_menu_actions_emit_signals(qtbot, small_grid, photo_paths):
    grid = small_grid
    menu = grid.context_menu()
    assert [a.text() for a in menu.actions() if a.text()] == [
        "Find similar", "Preview", "Open", "Reveal in folder", "Copy path"]
    assert not grid.find_similar_action.isEnabled()  # nothing selected yet
    select_rows(grid, [2, 5], current=5)
    assert grid.find_similar_action.isEnabled()
    assert grid.find_similar_action.shortcut() == QKeySequence(FIND_SIMILAR_SHORTCUT)
    assert grid.find_similar_action.shortcutContext() == Qt.ShortcutContext.WidgetWithChildrenShortcut
    assert [i.photo_id for i in grid.selected_items()] == [2, 5]

    with qtbot.waitSignal(grid.find_similar_requested) as blocker:
        grid.find_similar_action.trigger()
    assert blocker.args == [5]
    with qtbot.waitSignal(grid.open_requested) as blocker:
        grid.open_action.trigger()
    assert blocker.args == [[photo_paths[2], photo_paths[5]]]
    with qtbot.waitSignal(grid.reveal_requested) as blocker:
        grid.reveal_action.trigger()
    assert blocker.args == [photo_paths[5]]
    grid.copy_path_action.trigger()
    assert QGuiApplication.clipboard().text() == f"{photo_paths[2]}\n{photo_paths[5]}"


def test_space_previews_the_current_photo(qtbot, small_grid):
    grid = small_grid
    grid.setFocus()
    grid.setCurrentIndex(grid.model().index(3))
    previews: list[int] = []
    grid.preview_requested.connect(previews.append)
    qtbot.keyClick(grid, Qt.Key.Key_Space)
    assert previews == [3]


def test_activating_an_item_opens_it(qtbot, small_grid, photo_paths):
    grid = small_grid
    with qtbot.waitSignal(grid.open_requested) as blocker:
        grid.activated.emit(grid.model().index(4))
    assert blocker.args == [[photo_paths[4]]]


def test_current_photo_changes_and_resets(qtbot, small_grid, photo_paths):
    grid = small_grid
    with qtbot.waitSignal(grid.current_photo_changed) as blocker:
        grid.setCurrentIndex(grid.model().index(7))
    assert blocker.args == [7]
    with qtbot.waitSignal(grid.current_photo_changed) as blocker:
        grid.model().set_items(items_for(photo_paths, 3))
    assert blocker.args == [-1]
    assert grid.currentIndex() == QModelIndex()
