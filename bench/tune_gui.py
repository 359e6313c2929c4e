"""The app while it tunes: event-loop lateness and search round trips, idle vs during a tune job, in one run.

    .venv/bin/python bench/tune_gui.py [--photos 600]

A library of the shared photos (1,239, the tiny test model; user captions
from COCO, so the text side has pseudo-captions) is opened in the real main
window. A 10 ms timer records how late each tick fires (what a user feels
as stutter), and a text search is submitted every second, timed from submit
to results; first for 10 s with nothing running, then while *Tune for my
library* runs as a job on the inference lane. Printed: p50/p99/max tick
lateness and median search time, idle and during the tune, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import machine_line, pct, shared_data, wait_quiet

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def build(workdir: Path):
    from sqlalchemy import select

    from clipdesk.config import CoreConfig
    from clipdesk.gui.controller import LibraryController
    from clipdesk.indexer import index
    from clipdesk.store.models import Caption, Photo

    data = shared_data()
    controller = LibraryController(workdir / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0))
    lib = controller.library
    lib.writer = lambda thunk: thunk()  # built before the window: no lanes needed yet
    index(lib, [data / "coco_mini" / "images", data / "imagenet_sample"], controller.engine, CoreConfig())
    first = {e["file"]: e["captions"][0] for e in json.loads((data / "coco_mini" / "captions.json").read_text())}
    with lib.session() as s, s.begin():
        for pid, path in s.execute(select(Photo.id, Photo.path)).all():
            if Path(path).name in first:
                s.add(Caption(photo_id=pid, text=first[Path(path).name], source="user"))
    from clipdesk.gui.lanes import Lane

    lib.writer = lambda thunk: controller.tasks.call(Lane.WRITER, thunk)
    return controller


def measure(app, controller, window, until, queries) -> tuple[list[float], list[float]]:
    """Tick lateness (s) and search round trips (s) until ``until()`` is true."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    late, searches, pending = [], [], {}
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        late.append(max(0.0, (now - last[0]) / 1e9 - 0.010))
        last[0] = now

    def done(*_args) -> None:
        if "t" in pending:
            searches.append(time.perf_counter() - pending.pop("t"))

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    controller.search_finished.connect(done)
    next_query, i = time.perf_counter(), 0
    while not until():
        app.processEvents()
        if "t" not in pending and time.perf_counter() >= next_query:
            pending["t"] = time.perf_counter()
            window.search_bar.set_text(queries[i % len(queries)])
            window.search_bar.submit()
            i, next_query = i + 1, time.perf_counter() + 1.0
        time.sleep(0.001)
    timer.stop()
    controller.search_finished.disconnect(done)
    return late, searches


def line(name: str, late: list[float], searches: list[float]) -> str:
    ms = [x * 1000 for x in late]
    return (f"{name:12s} ticks {len(ms):5d}: lateness p50 {pct(ms, 50):6.1f} ms, p99 {pct(ms, 99):6.1f} ms, "
            f"max {max(ms):6.1f} ms; searches {len(searches):3d}: median {statistics.median(searches) * 1000:6.0f} ms")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=600, help="tune --photos")
    args = p.parse_args()
    from PySide6.QtWidgets import QApplication

    from clipdesk.gui.main_window import MainWindow
    from clipdesk.gui.settings import Settings
    from clipdesk.tuning.run import TuneOptions

    app = QApplication.instance() or QApplication([])
    queries = ["a dog on the grass", "a plate of food", "a red car", "people at a table"]
    with tempfile.TemporaryDirectory(prefix="clipdesk-bench-tune-gui-") as tmp:
        controller = build(Path(tmp))
        window = MainWindow(controller, Settings())
        window.show()
        controller.engine.model  # noqa: B018 - loaded before timing, as the app does in the background
        print(machine_line(torch=True))
        wait_quiet()
        t_end = time.perf_counter() + 10
        idle = measure(app, controller, window, lambda: time.perf_counter() > t_end, queries)
        outcome: list = []
        controller.tune_finished.connect(outcome.append)
        controller.tune_failed.connect(outcome.append)
        t0 = time.perf_counter()
        controller.tune(TuneOptions(photos=args.photos, coco=shared_data() / "coco_mini"))
        busy = measure(app, controller, window, lambda: bool(outcome), queries)
        took = time.perf_counter() - t0
        report = outcome[0]
        print(line("idle", *idle))
        print(line("during tune", *busy))
        kept = getattr(report, "kept", None)
        print(f"tune job: {took:.0f} s, kept {kept}; p99 tick lateness during/idle "
              f"{pct(busy[0], 99) / max(pct(idle[0], 99), 1e-4):.1f}x; median search during/idle "
              f"{statistics.median(busy[1]) / statistics.median(idle[1]):.1f}x")
        window.close()
        controller.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
