"""The app shows why each photo matched, and sorts the same results by date."""

from __future__ import annotations

import shutil
from datetime import datetime

from sqlalchemy import select, update

from clipdesk.captions.store import set_user_caption
from clipdesk.gui.main_window import PAGE_GRID
from clipdesk.store.models import Photo


def test_why_line_and_sort_toggle(window, qtbot, tmp_path, coco_images):
    folder = tmp_path / "trip"
    folder.mkdir()
    names = ["harbour.jpg", "lighthouse_dusk.jpg", "street.jpg", "lighthouse_noon.jpg"]
    for src, name in zip(coco_images, names, strict=False):
        shutil.copy(src, folder / name)
    controller = window.controller
    with qtbot.waitSignal(controller.index_finished, timeout=120000):
        controller.add_roots([str(folder)])
    lib = controller.library
    with lib.session() as s:
        ids = {path.rsplit("/", 1)[-1]: pid for pid, path in s.execute(select(Photo.id, Photo.path))}
    set_user_caption(lib, ids["harbour.jpg"], "an old lighthouse above the harbour")
    taken = {"harbour.jpg": datetime(2020, 5, 1), "lighthouse_dusk.jpg": datetime(2018, 1, 1),
             "lighthouse_noon.jpg": datetime(2024, 7, 7)}
    with lib.session() as s, s.begin():
        for name, when in taken.items():
            s.execute(update(Photo).where(Photo.id == ids[name]).values(taken_at=when))

    with qtbot.waitSignal(controller.search_finished, timeout=30000):
        window.search_bar.set_text("lighthouse")
        window.search_bar.submit()
    qtbot.waitUntil(lambda: window.pages.currentIndex() == PAGE_GRID and window.grid_model.rowCount() >= 3)
    items = {window.grid_model.item(r).path.rsplit("/", 1)[-1]: window.grid_model.item(r)
             for r in range(window.grid_model.rowCount())}
    assert "caption: an old lighthouse above the harbour" in items["harbour.jpg"].why
    assert "name: trip/lighthouse_dusk.jpg" in items["lighthouse_dusk.jpg"].why
    row = [window.grid_model.item(r).path for r in range(window.grid_model.rowCount())].index(
        items["harbour.jpg"].path)
    display = window.grid_model.data(window.grid_model.index(row))
    assert display.splitlines()[1] == "caption: an old lighthouse above the harbour"
    assert "looks like" in window.grid_model.data(window.grid_model.index(row), 3)  # the tooltip: every signal
    by_relevance = [window.grid_model.item(r).path for r in range(window.grid_model.rowCount())]

    with qtbot.waitSignal(controller.search_finished, timeout=30000):
        window.search_bar.sort_combo.setCurrentIndex(window.search_bar.sort_combo.findData("date"))
    qtbot.waitUntil(lambda: [window.grid_model.item(r).path for r in range(window.grid_model.rowCount())]
                    != by_relevance or window.grid_model.rowCount() == 0, timeout=10000)
    by_date = [window.grid_model.item(r).path.rsplit("/", 1)[-1] for r in range(window.grid_model.rowCount())]
    assert sorted(by_date) == sorted(p.rsplit("/", 1)[-1] for p in by_relevance)  # the same photos
    dated = [n for n in by_date if n in taken]
    assert dated == sorted(dated, key=lambda n: taken[n], reverse=True)
    assert by_date[: len(dated)] == dated  # undated photos last
