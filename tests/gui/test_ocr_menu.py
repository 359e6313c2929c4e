"""Tools ▸ Read words in photos (OCR): a job with progress, then a search shows and highlights the words."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from clipdesk.ocr.samples import SAMPLES, write_samples


def test_ocr_runs_from_the_menu_and_the_panel_highlights_the_search(window, qtbot, tmp_path):
    controller = window.controller
    photos = write_samples(tmp_path / "photos", SAMPLES[:2], plain=1)
    with qtbot.waitSignal(controller.index_finished, timeout=120_000):
        controller.add_roots([str(tmp_path / "photos")])
    assert "Read &words in photos (OCR)" in [a.text() for a in window.menuBar().actions()[-1].menu().actions()]

    progress = []
    controller.jobs.progress.connect(lambda job, st: job.kind == "ocr" and progress.append(st))
    with qtbot.waitSignal(controller.jobs.finished, timeout=120_000,
                          check_params_cb=lambda job, _report: job.kind == "ocr") as done:
        window.ocr_action.trigger()
    report = done.args[1]
    assert (report.read, report.with_text, report.cancelled) == (3, 2, False)
    assert progress and progress[-1].done == progress[-1].total == 3  # the status bar's numbers
    assert window.status_label.text().startswith("Read words: 3 of 3 photos, 2 with text")

    with qtbot.waitSignal(controller.search_finished, timeout=30_000):
        window.search_bar.focus_query()
        QTest.keyClicks(window.search_bar.line_edit, "zimmer 214")
        QTest.keyClick(window.search_bar.line_edit, Qt.Key_Return)
    assert window.grid_model.item(0).path == str(photos["hotel"])  # the word in the photo ranks it first
    qtbot.waitUntil(lambda: window.detail.photo_text is not None and window.detail.details is not None
                    and window.detail.details.path == str(photos["hotel"]), timeout=10_000)
    assert "zimmer" in window.detail.words_label.text().lower()
    qtbot.waitUntil(lambda: len(window.detail.highlighted) == 2, timeout=10_000)  # "Zimmer" and "214"

    with qtbot.waitSignal(controller.jobs.finished, timeout=60_000,
                          check_params_cb=lambda job, _r: job.kind == "ocr") as again:
        controller.run_ocr()
    assert again.args[1].todo == 0  # the next run resumes: nothing left to read
