"""DetailPanel: metadata rows, async preview from a real photo, stale previews dropped."""

from __future__ import annotations

from datetime import datetime

import pytest
from PIL import Image
from PySide6.QtGui import QPixmap

from clipdesk.gui.panels.detail_panel import EMPTY_TEXT, DetailPanel, human_size, load_preview
from clipdesk.store.queries import PhotoDetails


def _details(path, photo_id=7, **overrides) -> PhotoDetails:
    with Image.open(path) as im:
        w, h = im.size
        fmt = im.format
    fields = dict(
        id=photo_id, path=str(path), size=path.stat().st_size, format=fmt, width=w, height=h, frames=1,
        taken_at=datetime(2021, 7, 4, 15, 30, 5), camera_make="Canon", camera_model="Canon EOS R5",
        gps_lat=48.8583701, gps_lon=2.2944813, missing=False,
        labels=[("dog", 0.314, "accepted"), ("beach", None, "proposed")], caption="A dog running on a beach.",
    )
    fields.update(overrides)
    return PhotoDetails(**fields)


@pytest.fixture
def panel(qtbot):
    widget = DetailPanel()
    widget.resize(420, 700)
    qtbot.addWidget(widget)
    return widget


def test_empty_state(panel):
    assert panel.stack.currentWidget() is panel.empty_label
    assert panel.empty_label.text() == EMPTY_TEXT


def test_shows_metadata_and_the_preview_arrives(panel, qtbot, coco_images):
    photo = coco_images[0]
    details = _details(photo)
    with qtbot.waitSignal(panel.preview_loaded, timeout=10_000) as blocker:
        panel.show_photo(details, score=0.28734)
    assert blocker.args == [7]
    assert panel.name_label.text() == photo.name
    assert panel.path_label.text() == str(photo)
    assert panel.dimensions_label.text() == f"{details.width} × {details.height}"
    assert panel.format_label.text() == "JPEG"
    assert panel.size_label.text().endswith("KB")
    assert panel.date_label.text() == "2021-07-04 15:30:05"
    assert panel.camera_label.text() == "Canon EOS R5"
    assert panel.gps_label.text() == "48.85837, 2.29448"
    assert panel.labels_label.text() == "dog (0.31)\nbeach"
    assert panel.caption_label.text() == "A dog running on a beach."
    assert panel.score_label.text() == "0.287"
    assert panel.missing_label.isHidden()
    pixmap = panel.preview_label.pixmap()
    assert not pixmap.isNull()
    assert 0 < pixmap.deviceIndependentSize().width() <= panel.width()


def test_unknown_fields_are_hidden_not_none(panel, qtbot, coco_images):
    details = _details(coco_images[1], taken_at=None, camera_make=None, camera_model=None, gps_lat=None,
                       gps_lon=None, labels=[], caption=None)
    with qtbot.waitSignal(panel.preview_loaded, timeout=10_000):
        panel.show_photo(details)
    for name in ("date", "camera", "gps", "labels", "caption", "score"):
        label = getattr(panel, f"{name}_label")
        assert label.text() == ""
        assert not panel.form.isRowVisible(label)
    assert panel.form.isRowVisible(panel.path_label)


def test_stale_preview_is_discarded(panel, qtbot, coco_images, qapp):
    seen = []
    panel.preview_loaded.connect(seen.append)
    first, second = _details(coco_images[0], photo_id=1), _details(coco_images[1], photo_id=2)
    panel.show_photo(first)
    panel.tasks.wait()  # photo 1 decoded; its result is queued, not yet delivered
    with qtbot.waitSignal(panel.preview_loaded, timeout=10_000, check_params_cb=lambda pid: pid == 2):
        panel.show_photo(second)
    panel.tasks.wait()
    qapp.processEvents()
    assert seen == [2]
    assert panel.path_label.text() == str(coco_images[1])


def test_quick_switching_shows_only_the_last(panel, qtbot, coco_images, qapp):
    seen = []
    panel.preview_loaded.connect(seen.append)
    for i, path in enumerate(coco_images[:4]):
        panel.show_photo(_details(path, photo_id=100 + i))
    with qtbot.waitSignal(panel.preview_loaded, timeout=10_000):
        panel.show_photo(_details(coco_images[4], photo_id=104))
    panel.tasks.wait()
    qapp.processEvents()
    assert seen == [104]


def test_back_to_empty_drops_the_pending_preview(panel, qtbot, coco_images, qapp):
    panel.show_photo(_details(coco_images[0]))
    with qtbot.assertNotEmitted(panel.preview_loaded):
        panel.show_photo(None)
        panel.tasks.wait()
        qapp.processEvents()
    assert panel.stack.currentWidget() is panel.empty_label


def test_missing_photo(panel, qtbot, tmp_path):
    gone = tmp_path / "gone.jpg"
    Image.new("RGB", (8, 8)).save(gone)
    details = _details(gone, missing=True)
    gone.unlink()
    with qtbot.assertNotEmitted(panel.preview_loaded), qtbot.assertNotEmitted(panel.preview_failed):
        panel.show_photo(details)
    assert not panel.missing_label.isHidden()
    assert "missing from disk" in panel.missing_label.text()


def test_undecodable_file_shows_a_notice(panel, qtbot, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    details = PhotoDetails(9, str(bad), 17, "JPEG", 10, 10, 1, None, None, None, None, None, False)
    with qtbot.waitSignal(panel.preview_failed, timeout=10_000) as blocker:
        panel.show_photo(details)
    assert blocker.args == [9]
    assert panel.preview_label.text().startswith("Preview unavailable:")


def test_load_preview_is_upright_and_fits(tmp_path):
    # A landscape pixel grid stored with EXIF orientation 6 (rotate 90° clockwise to view).
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (400, 200), "red").save(path, exif=exif)
    image = load_preview(str(path), 100)
    assert (image.width(), image.height()) == (50, 100)


@pytest.mark.parametrize(("n", "text"), [(0, "0 bytes"), (1, "1 byte"), (1500, "1.5 KB"),
                                         (2_400_000, "2.4 MB"), (3 * 10**9, "3.0 GB")])
def test_human_size(n, text):
    assert human_size(n) == text


def test_labels_show_their_evidence(panel, coco_images):
    evidence = {"dog": [("a wagging tail", 0.331), ("floppy or pointed ears", 0.302), ("fur", 0.29), ("x", 0.1)]}
    panel.show_photo(_details(coco_images[0], evidence=evidence))
    lines = panel.labels_label.text().split("\n")
    assert lines[0] == "dog (0.31) — because: a wagging tail 0.33, floppy or pointed ears 0.30, fur 0.29"
    assert lines[1] == "beach"  # no evidence stored: the verdict alone


# -- words in the photo (OCR) ------------------------------------------------------------------------

@pytest.fixture
def text_photo(tmp_path):
    """A rendered photo with stored OCR lines (constructed: no model) in a real library."""
    from clipdesk.ocr.engine import OcrLine, OcrResult
    from clipdesk.ocr.samples import SAMPLES, render
    from clipdesk.ocr.store import write_results
    from clipdesk.store.db import Library
    from clipdesk.store.models import Photo, utcnow

    path = tmp_path / "hotel.jpg"
    render(SAMPLES[1]).save(path)  # 1200 x 800
    lib = Library(tmp_path / "lib")
    line = OcrLine("Zimmer214", [[120.0, 160.0], [600.0, 160.0], [600.0, 230.0], [120.0, 230.0]], 0.97)

    def write(s):
        ids = []
        for name in ("hotel.jpg", "unread.jpg", "blank.jpg"):
            p = Photo(path=str(tmp_path / name), size=1, mtime_ns=1, content_hash="h", format="JPEG", width=1200,
                      height=800, frames=1, added_at=utcnow())
            s.add(p)
            s.flush()
            ids.append(p.id)
        write_results(s, "k", {ids[0]: OcrResult([line], "h"), ids[2]: OcrResult([], "h")}, {})
        return ids

    ids = lib.write(write)
    yield lib, path, ids
    lib.close()


def _text_panel(qtbot, lib):
    widget = DetailPanel(library=lambda: lib)
    widget.resize(420, 700)
    qtbot.addWidget(widget)
    return widget


def test_shows_the_words_and_highlights_the_matching_ones(qtbot, text_photo):
    lib, path, (pid, _, _) = text_photo
    panel = _text_panel(qtbot, lib)
    panel.set_query(["zimmer"])
    details = _details(path, photo_id=pid, labels=[], caption=None)
    with qtbot.waitSignal(panel.preview_loaded, timeout=10_000), qtbot.waitSignal(panel.text_loaded, timeout=10_000):
        panel.show_photo(details)
    assert panel.words_label.text() == "Zimmer214  (0.97)"
    assert len(panel.highlighted) == 1
    pixmap = panel.preview_label.pixmap()
    scale = pixmap.width() / 1200  # the preview is the photo scaled; the box follows it
    (x0, y0), (x1, _), (_, y2), _ = panel.highlighted[0]
    assert x0 == pytest.approx(120 * scale, abs=0.5) and y0 == pytest.approx(160 * scale, abs=0.5)
    assert x1 == pytest.approx((120 + 480 * 6 / 9) * scale, abs=0.5)  # "Zimmer" is 6 of the 9 characters
    assert y2 == pytest.approx(230 * scale, abs=0.5)
    inside = pixmap.toImage().pixelColor(int((x0 + x1) / 2), int((y0 + y2) / 2))
    plain = QPixmap.fromImage(panel._image).toImage()  # noqa: SLF001 - the undecorated preview
    scaled = plain.scaled(pixmap.width(), pixmap.height()).pixelColor(int((x0 + x1) / 2), int((y0 + y2) / 2))
    assert inside != scaled  # the highlight is painted where the word is
    panel.set_query(["sauna"])  # control: no match, nothing drawn
    assert panel.highlighted == []
    panel.set_query([], ["zimmer 214"])
    assert len(panel.highlighted) == 1


def test_says_when_ocr_has_not_run_or_found_nothing(qtbot, text_photo):
    from clipdesk.gui.ocr_text import NO_TEXT, NOT_RUN_TEXT

    lib, path, (_, unread, blank) = text_photo
    panel = _text_panel(qtbot, lib)
    for pid, expected in ((unread, NOT_RUN_TEXT), (blank, NO_TEXT)):
        with qtbot.waitSignal(panel.text_loaded, timeout=10_000):
            panel.show_photo(_details(path, photo_id=pid, labels=[], caption=None))
        assert panel.words_label.text() == expected


def test_without_a_library_the_words_row_is_hidden(panel, coco_images):
    panel.show_photo(_details(coco_images[0]))
    assert not panel.form.isRowVisible(panel.words_label)
