"""Drive the real app through its main states and save screenshots.

Usage: .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--model tiny-random]

Runs on the X display in $DISPLAY, or starts Xvfb (Debian: apt-get install xvfb
libxcb-cursor0 libxkbcommon-x11-0) when there is none. Uses a temporary library
indexed from ../shared/data; with the test-only tiny-random model the rankings
shown are meaningless, the states are what matter.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def ensure_display() -> subprocess.Popen | None:
    if os.environ.get("DISPLAY"):
        return None
    display = ":97"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1440x900x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ["DISPLAY"] = display
    time.sleep(1.0)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    parser.add_argument("--model", default="tiny-random")
    args = parser.parse_args()
    xvfb = ensure_display()
    os.environ.pop("QT_QPA_PLATFORM", None)
    work = Path(tempfile.mkdtemp(prefix="clipdesk-shots-"))
    os.environ["CLIPDESK_HOME"] = str(work / "home")
    try:
        return _drive(Path(args.out), args.model, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()


def _drive(out: Path, model: str, work: Path) -> int:
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from clipdesk.config import CoreConfig
    from clipdesk.gui.controller import LibraryController
    from clipdesk.gui.main_window import MainWindow
    from clipdesk.gui.settings import Settings

    QCoreApplication.setOrganizationName("clipdesk-screenshots")
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(work / "settings"))
    app = QApplication(sys.argv[:1])
    out.mkdir(parents=True, exist_ok=True)

    def wait(cond, timeout=120.0) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("the app did not reach the expected state")
            app.processEvents()
            time.sleep(0.02)

    def shot(name: str, widget=None) -> None:
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        path = out / f"{name}.png"
        (widget or window).grab().save(str(path))
        print(f"saved {path}")

    photos = work / "photos"
    shutil.copytree(DATA / "coco_mini" / "images", photos / "coco")
    shutil.copytree(DATA / "imagenet_sample", photos / "imagenet", ignore=shutil.ignore_patterns("*.json"))
    controller = LibraryController(work / "library", model=model, config=CoreConfig(batch_size=8))
    window = MainWindow(controller, Settings())
    window.resize(1400, 860)
    window.show()
    controller.load_model()
    wait(lambda: window.model_label.text() == "Model ready")
    shot("1-first-launch")

    window.add_paths([str(photos / "coco"), str(photos / "imagenet")])
    wait(lambda: window.progress.isVisible() and window.progress.value() > 200)
    shot("2-indexing")
    wait(lambda: not controller.indexing and not window.progress.isVisible(), timeout=600)

    window.search_bar.set_text("a dog playing in the snow")
    window.search_bar.submit()
    wait(lambda: window.grid_model.rowCount() > 0 and window.grid_model.item(0).score is not None)
    window.grid.setCurrentIndex(window.grid_model.index(0))
    wait(lambda: window.detail.path_label.text() != "")
    shot("3-text-search")

    target = next(r for r in range(window.grid_model.rowCount()) if "n02" in window.grid_model.item(r).path)
    item = window.grid_model.item(target)
    window.grid.setCurrentIndex(window.grid_model.index(target))
    window.find_similar(item.photo_id)
    wait(lambda: window.grid_model.rowCount() > 0 and window.search_bar.image())
    window.grid.setCurrentIndex(window.grid_model.index(0))
    QTest.qWait(300)
    shot("4-similar-search")

    window.search_bar.clear_image()
    window.search_bar.set_text("")
    window.back()
    wait(lambda: window.grid_model.rowCount() > 0 and window.grid_model.item(0).score is None)
    window.grid.setCurrentIndex(window.grid_model.index(3))
    QTest.qWait(500)
    shot("5-detail-panel")

    tune = window.tune_for_library()  # Tools ▸ Tune for my library…, before any tuning
    wait(lambda: tune.status is not None)
    shot("6-tune-dialog", tune)
    tune.close()

    # Words in photos and duplicates: a few generated photos beside the shared ones (OCR over all 1,100 photos
    # would take minutes), read on the inference lane as Tools ▸ Read words in photos does.
    from clipdesk.duplicates.synth import make_tree
    from clipdesk.gui.duplicates_view import open_duplicates
    from clipdesk.gui.ocr_job import ocr_engine
    from clipdesk.ocr.run import ocr_library
    from clipdesk.ocr.samples import SAMPLES, write_samples
    from clipdesk.store.queries import find_photo

    samples = write_samples(photos / "receipts", SAMPLES[:3], plain=0)
    make_tree(sorted((photos / "coco").glob("*.jpg"))[:3], photos / "copies", negatives=0)
    indexed = []
    controller.index_finished.connect(lambda *_: indexed.append(True))
    window.add_paths([str(photos / "receipts"), str(photos / "copies")])
    wait(lambda: indexed and not controller.indexing, timeout=300)
    read = []
    controller.read(lambda: [find_photo(controller.library, str(p)) for p in samples.values()],
                    lambda ids: controller.infer(lambda: ocr_library(controller.library, ocr_engine(), ids),
                                                 read.append))
    wait(lambda: read, timeout=300)
    window.search_bar.set_text("invoice 7391")
    window.search_bar.submit()
    wait(lambda: window.grid_model.rowCount() > 0 and window.grid_model.item(0).why)
    window.grid.setCurrentIndex(window.grid_model.index(0))
    wait(lambda: window.detail.highlighted)
    shot("7-words-in-photo")

    view = open_duplicates(window)
    view.find()
    wait(lambda: view.groups and view.tree.topLevelItemCount(), timeout=300)
    QTest.qWait(1500)  # the thumbnails arrive from the IO lane
    shot("8-duplicates", view)
    view.close()
    window.close()
    controller.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
