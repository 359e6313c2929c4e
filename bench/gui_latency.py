"""GUI latency: launch to first window shown, and query to first results shown.

Both are printed as ratios against a baseline measured in the same run:
- launch: ``clipdesk`` (window + controller + library) vs a bare PySide6
  QMainWindow in a fresh process (the cost of Python + Qt themselves);
- query: the GUI's submit-to-grid-filled time vs the core ``Searcher.search``
  on the same library and queries (the cost of the lanes, signals and grid),
  excluding model load, which happens once in the background.

Usage: .venv/bin/python bench/gui_latency.py [--model tiny-random|vit-b-32-random] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import coco_images, machine_line, pct, random_engine

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_BARE = """
import time, sys
t0 = time.perf_counter()
from PySide6.QtWidgets import QApplication, QMainWindow
from PySide6.QtCore import QTimer
app = QApplication([])
w = QMainWindow(); w.resize(1280, 800); w.show()
def shown():
    print(time.perf_counter() - t0); app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""

_APP = """
import time, sys, argparse
t0 = time.perf_counter()
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QTimer
app = QApplication([])
from clipdesk.gui import app as app_mod
window, close = app_mod.launch(argparse.Namespace(library=sys.argv[1], model="tiny-random", device="cpu"))
def shown():
    print(time.perf_counter() - t0); close(); app.quit()
QTimer.singleShot(0, shown)  # runs after the window's first show event is processed
app.exec()
"""


def launch_times(runs: int, library: Path) -> tuple[list[float], list[float]]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CLIPDESK_HOME=str(library.parent / "home"))
    bare, full = [], []
    for _ in range(runs):  # interleaved, so drift hits both alike
        for code, out, args in ((_BARE, bare, []), (_APP, full, [str(library)])):
            proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                                  timeout=300)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            out.append(float(proc.stdout.strip().splitlines()[-1]))
    return bare, full


def query_times(queries: list[str], engine_name: str, workdir: Path) -> tuple[list[float], list[float]]:
    from PySide6.QtWidgets import QApplication

    from clipdesk.config import CoreConfig
    from clipdesk.gui.controller import LibraryController
    from clipdesk.gui.main_window import MainWindow
    from clipdesk.gui.settings import Settings
    from clipdesk.indexer import index
    from clipdesk.search import Searcher, parse_text_query

    app = QApplication.instance() or QApplication([])
    folder = workdir / "photos"
    folder.mkdir()
    for src in coco_images():
        os.symlink(src, folder / src.name)
    controller = LibraryController(workdir / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0))
    if engine_name != "tiny-random":  # same code path, real-size text encoder
        controller.engine = controller.search_engine = random_engine("ViT-B-32")
    index(controller.library, [folder], controller.engine, CoreConfig(decode_workers=0))
    window = MainWindow(controller, Settings())
    window.show()
    controller.engine.model  # noqa: B018 - excluded: the model loads once, in the background
    core = Searcher(controller.library, controller.engine, 10**9, cutoff=False)
    core.search(parse_text_query("warm up"), k=200)
    gui, direct = [], []
    for q in queries:
        t = time.perf_counter()
        core.search(parse_text_query(q), k=200)
        direct.append(time.perf_counter() - t)
        done = []
        controller.search_finished.connect(lambda *_: done.append(True))
        t = time.perf_counter()
        window.search_bar.set_text(q)
        window.search_bar.submit()
        while not done:
            app.processEvents()
        app.processEvents()  # the grid is filled in the slot; let it paint
        gui.append(time.perf_counter() - t)
        controller.search_finished.disconnect()
    window.close()
    controller.shutdown()
    return direct, gui


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="vit-b-32-random", choices=["tiny-random", "vit-b-32-random"])
    args = parser.parse_args()
    print(machine_line(torch=True))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bare, full = launch_times(args.runs, tmp / "launch-lib")
        print(f"launch to window shown: bare Qt p50 {statistics.median(bare) * 1000:.0f} ms, "
              f"clipdesk p50 {statistics.median(full) * 1000:.0f} ms (p95 {pct(full, 95) * 1000:.0f} ms); "
              f"ratio {statistics.median(full) / statistics.median(bare):.2f}x")
        queries = ["a dog on a beach", "people eating pizza", "a red car at night", "snow -people",
                   "a kitchen with a fridge", "elephants", "a man riding a horse", "food on a plate"] * 3
        direct, gui = query_times(queries, args.model, tmp)
        print(f"query to results shown ({len(queries)} queries, {args.model}, 239 photos): "
              f"core p50 {statistics.median(direct) * 1000:.0f} ms, GUI p50 {statistics.median(gui) * 1000:.0f} ms "
              f"(p95 {pct(gui, 95) * 1000:.0f} ms); GUI/core ratio {statistics.median(gui) / statistics.median(direct):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
