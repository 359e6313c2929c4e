"""Grid memory and loading: a 100k-row ThumbnailGrid scrolled end to end, offscreen.

One run measures, against the same process's empty shown window:

- RSS after the 100k-row model is set and laid out, its peak while scrolling
  (sampled at every stop, plus the kernel's VmHWM), at each quarter of the
  way, and at the end; compared with the pixmap cache's own bound;
- thumbnails requested / started (decoded) / dropped by ``keep_only``, against
  the number of rows;
- how long a screen takes to fill after a jump (median, p95), and the layout time.

The scroll makes ``--stops`` evenly spaced stops from top to bottom and
waits at each until every visible thumbnail is shown; between stops it
flings through ``--fling`` positions with one event-loop turn each, as a fast
wheel or scrollbar drag would, so requests pile up and get dropped.
Rows reuse the coco_mini photos by path (each row has its own photo id, so
each row is its own pixmap); the disk thumbnail cache is a fresh temp dir.

    .venv/bin/python bench/grid_memory.py
    .venv/bin/python bench/grid_memory.py --rows 100000 --stops 400 --size 256
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import _common  # noqa: E402, F401 - sets up sys.path
from _common import coco_images, machine_line, pct  # noqa: E402


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--stops", type=int, default=250)
    ap.add_argument("--fling", type=int, default=4, help="positions flung through between stops")
    ap.add_argument("--size", type=int, default=160, help="thumbnail px (the app's default)")
    ap.add_argument("--window", default="1200x800")
    ap.add_argument("--cache-limit", type=int, default=None, help="pixmaps kept (default: the model's)")
    args = ap.parse_args()
    width, height = (int(v) for v in args.window.split("x"))

    from PySide6.QtWidgets import QApplication, QMainWindow

    import clipdesk.gui  # noqa: F401 - applies the PySide refcount guard
    from clipdesk.gui.models.thumbnail_model import ResultItem, ThumbnailModel
    from clipdesk.gui.thumbnails import ThumbnailLoader
    from clipdesk.gui.views.thumbnail_grid import ThumbnailGrid

    app = QApplication([])
    window = QMainWindow()
    window.resize(width, height)
    window.show()

    def pump(cond, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            app.processEvents()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)  # leave the cores to the two loader threads
        return True

    pump(lambda: False, 0.3)
    base = rss_mb()
    photos = [str(p) for p in coco_images()]
    cache_dir = Path(tempfile.mkdtemp(prefix="clipdesk-bench-thumbs-"))

    t0 = time.perf_counter()
    loader = ThumbnailLoader(cache_dir, size=args.size)
    model = ThumbnailModel(loader, cache_limit=args.cache_limit)
    grid = ThumbnailGrid()
    grid.setModel(model)
    window.setCentralWidget(grid)
    model.set_items([ResultItem(i, photos[i % len(photos)], score=0.25) for i in range(args.rows)])
    last = model.index(args.rows - 1)
    pump(lambda: grid.visualRect(last).isValid() and grid.verticalScrollBar().maximum() > 0)
    layout_s = time.perf_counter() - t0
    pump(lambda: loader.pending_count == 0 and grid.visible_rows_cache == grid.visible_rows())
    after_layout = rss_mb()
    per_screen = len(grid.visible_rows())

    bar = grid.verticalScrollBar()
    top, bottom = bar.minimum(), bar.maximum()
    fill_ms: list[float] = []
    peak = after_layout
    quarters: list[float] = []
    incomplete = 0
    t_scroll = time.perf_counter()
    for stop in range(1, args.stops + 1):
        target = top + (bottom - top) * stop // args.stops
        previous = bar.value()
        for k in range(1, args.fling + 1):
            bar.setValue(previous + (target - previous) * k // (args.fling + 1))
            app.processEvents()  # one frame: paints, hence requests, for rows flown past
        t = time.perf_counter()
        bar.setValue(target)

        def screen_filled() -> bool:
            rows = grid.visible_rows()
            return (grid.visible_rows_cache == rows and loader.pending_count == 0
                    and all(model.has_pixmap(model.item(r).photo_id) for r in rows))

        incomplete += not pump(screen_filled)
        fill_ms.append((time.perf_counter() - t) * 1000)
        peak = max(peak, rss_mb())
        if stop % max(1, args.stops // 4) == 0:
            quarters.append(rss_mb())
    scroll_s = time.perf_counter() - t_scroll
    end = rss_mb()
    hwm = rss_mb("VmHWM")

    limit = model.cache_limit
    thumb_mb = args.size * args.size * 3 / 4 * 4 / 2**20  # a 4:3 thumbnail at 4 bytes a pixel
    bound = limit * thumb_mb
    print(machine_line())
    print(f"grid: {args.rows:,} rows, {args.size} px thumbnails, window {width}x{height}, "
          f"{per_screen} rows on screen, {args.stops} stops with {args.fling} fling frames between")
    print(f"layout of {args.rows:,} rows: {layout_s:.2f} s; scroll end to end: {scroll_s:.1f} s"
          + (f" ({incomplete} stops timed out)" if incomplete else ""))
    print(f"screen filled after a jump: median {statistics.median(fill_ms):.0f} ms, p95 {pct(fill_ms, 95):.0f} ms")
    print(f"thumbnails requested {loader.requested_count:,} / rows {args.rows:,} "
          f"= {loader.requested_count / args.rows:.3f}; decoded {loader.started_count:,}; "
          f"dropped unstarted {loader.requested_count - loader.started_count:,} "
          f"({(loader.requested_count - loader.started_count) / max(1, loader.requested_count):.0%} of requests)")
    print(f"pixmaps cached at the end {model.cached_count:,} / limit {limit:,} "
          f"(bound ~{bound:.0f} MB at {thumb_mb * 1024:.0f} KB each)")
    print(f"RSS empty window {base:.0f} MB; +{after_layout - base:.0f} MB after the model and layout; "
          f"peak while scrolling +{peak - base:.0f} MB (VmHWM +{hwm - base:.0f} MB); end +{end - base:.0f} MB")
    print("RSS at each quarter of the scroll: " + ", ".join(f"+{q - base:.0f} MB" for q in quarters))
    print(f"growth while scrolling (peak - after layout) / pixmap-cache bound = {(peak - after_layout) / bound:.2f}; "
          f"growth in the last 3/4 of the scroll = {(end - quarters[0]) if quarters else 0:+.0f} MB")
    loader.shutdown()


if __name__ == "__main__":
    main()
