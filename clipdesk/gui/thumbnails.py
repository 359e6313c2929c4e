"""Thumbnails off the GUI thread: ``ThumbnailLoader``, on the task manager's IO lane.

Requests go into a de-duplicated queue that at most two IO tasks drain: each
takes the next id, makes or finds the disk thumbnail (core
``clipdesk.thumbs.cached_thumbnail``), reads it as a ``QImage`` (safe across
threads; ``QPixmap`` is not) and posts results back in chunks. The queue is
ours rather than the lane's so ``keep_only`` can really drop requests for rows
that were scrolled past, and so the shared IO lane is never flooded with 100k tasks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from os import PathLike

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal
from PySide6.QtGui import QImage

from clipdesk.gui.lanes import Lane, TaskManager, default_tasks
from clipdesk.imageio import ImageReadError
from clipdesk.thumbs import cached_thumbnail

# Thumbnails are kept on disk at a few sizes only and scaled down in the
# worker, so zooming the grid does not write a new set of files per step.
DISK_SIZES = (128, 256, 512)
MAX_WORKERS = 2
CHUNK_SECONDS = 0.05  # post results back every 50 ms at most (Picard's rhythm)


def disk_size_for(px: int) -> int:
    """The on-disk thumbnail size used to show thumbnails of ``px`` pixels."""
    return next((s for s in DISK_SIZES if s >= px), DISK_SIZES[-1])


class _Queue:
    """State shared by the GUI thread and the drain jobs; plain Python under one lock."""

    def __init__(self, cache_dir: str | PathLike[str], size: int) -> None:
        self.lock = threading.Lock()
        self.cache_dir = cache_dir
        self.size = size
        self.generation = 0  # bumped by set_size: older results are stale
        self.order: deque[int] = deque()  # may hold ids dropped since; skipped on take
        self.queued: dict[int, str] = {}
        self.in_flight: set[int] = set()
        self.workers = 0
        self.started = 0
        self.closed = False

    def take(self) -> tuple[int, str, int, int] | None:
        """The next request as (id, path, size, generation); None retires the caller."""
        with self.lock:
            while self.order and not self.closed:
                photo_id = self.order.popleft()
                path = self.queued.pop(photo_id, None)
                if path is not None:
                    self.in_flight.add(photo_id)
                    self.started += 1
                    return photo_id, path, self.size, self.generation
            self.workers -= 1
            return None

    def close(self, *_args) -> None:
        with self.lock:
            self.closed = True
            self.queued.clear()
            self.order.clear()


class _Signals(QObject):
    chunk = Signal(list)  # [(photo_id, generation, QImage | None, error | None)]


class _Drain:
    """One IO task: takes requests until the queue is empty, posting results every 50 ms."""

    def __init__(self, work: _Queue, signals: _Signals) -> None:
        self._work, self._signals = work, signals

    def __call__(self) -> None:
        chunk: list[tuple] = []
        since = time.monotonic()
        while (task := self._work.take()) is not None:
            photo_id, path, size, generation = task
            chunk.append((photo_id, generation, *_load(path, size, self._work.cache_dir)))
            if time.monotonic() - since >= CHUNK_SECONDS:
                self._post(chunk)
                chunk, since = [], time.monotonic()
        if chunk:
            self._post(chunk)

    def _post(self, chunk: list[tuple]) -> None:
        try:
            self._signals.chunk.emit(chunk)
        except RuntimeError:  # the loader is gone (app closing): nobody wants these
            self._work.close()


def _load(path: str, size: int, cache_dir) -> tuple[QImage | None, str | None]:
    """(image, None) or (None, reason); never raises, one bad file must not stop the lane."""
    try:
        image = QImage(str(cached_thumbnail(path, disk_size_for(size), cache_dir)))
        if image.isNull():
            return None, "the cached thumbnail cannot be read"
        if image.width() > size or image.height() > size:
            image = image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
        # The format QPixmap uses natively, so the GUI thread's fromImage is a copy only.
        native = QImage.Format.Format_ARGB32_Premultiplied if image.hasAlphaChannel() else QImage.Format.Format_RGB32
        return image.convertToFormat(native), None
    except ImageReadError as exc:
        return None, str(exc)
    except FileNotFoundError:
        return None, "file not found"
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    except Exception as exc:  # noqa: BLE001 - reported through `failed`, never lost in a worker
        return None, f"unexpected {type(exc).__name__}: {exc}"


class ThumbnailLoader(QObject):
    """Loads thumbnails as ``QImage`` on a thread pool, de-duplicated, droppable.

    Signals:
        loaded(int, QImage): a thumbnail for that photo id, at most ``size`` px a side.
        failed(int, str): the photo cannot be shown; the reason.
        size_changed(int): ``set_size`` changed the size; earlier images are stale.
    """

    loaded = Signal(int, QImage)
    failed = Signal(int, str)
    size_changed = Signal(int)

    def __init__(self, cache_dir: str | PathLike[str], size: int = 256, tasks: TaskManager | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._work = _Queue(cache_dir, size)
        self._tasks = tasks or default_tasks()
        self._max_workers = 1 if self._tasks.inline else max(1, min(MAX_WORKERS, self._tasks.io_threads))
        self._signals = _Signals(self)
        # Queued even from a synchronous test pool: results never re-enter data().
        self._signals.chunk.connect(self._on_chunk, Qt.ConnectionType.QueuedConnection)
        self._signals.destroyed.connect(self._work.close)
        self.requested_count = 0
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    @property
    def size(self) -> int:
        return self._work.size

    @property
    def started_count(self) -> int:
        """Requests a worker has begun (queued ones dropped by ``keep_only`` never start)."""
        return self._work.started

    @property
    def pending_count(self) -> int:
        """Requests queued or being loaded."""
        with self._work.lock:
            return len(self._work.queued) + len(self._work.in_flight)

    def request(self, photo_id: int, path: str) -> None:
        """Queue a load unless that id is already queued or being loaded."""
        work = self._work
        with work.lock:
            if work.closed or photo_id in work.queued or photo_id in work.in_flight:
                return
            work.queued[photo_id] = path
            work.order.append(photo_id)
            self.requested_count += 1
            start = work.workers < self._max_workers
            if start:
                work.workers += 1
        if start:
            self._tasks.run(Lane.IO, _Drain(work, self._signals))

    def keep_only(self, visible_ids: set[int]) -> int:
        """Drop queued requests whose id is not in ``visible_ids``; return how many went.

        Loads already running finish (and are cached) anyway.
        """
        work = self._work
        with work.lock:
            stale = [i for i in work.queued if i not in visible_ids]
            for photo_id in stale:
                del work.queued[photo_id]
            if stale:
                work.order = deque(i for i in work.order if i in work.queued)
        return len(stale)

    def set_size(self, px: int) -> None:
        """Load at most ``px`` pixels a side from now on; drops the queue, emits ``size_changed``."""
        px = int(px)
        if px <= 0:
            raise ValueError(f"thumbnail size must be positive, not {px}")
        work = self._work
        with work.lock:
            if px == work.size:
                return
            work.size = px
            work.generation += 1
            work.queued.clear()
            work.order.clear()
            # Loads in flight finish at the old size and are ignored, so the
            # same ids may be requested again at once.
            work.in_flight.clear()
        self.size_changed.emit(px)

    def shutdown(self) -> None:
        """Drop the queue: running loads finish their current photo and stop."""
        self._work.close()

    def _on_chunk(self, chunk: list[tuple]) -> None:
        work = self._work
        fresh = []
        with work.lock:
            for photo_id, generation, image, error in chunk:
                if generation == work.generation:
                    work.in_flight.discard(photo_id)
                    fresh.append((photo_id, image, error))
        for photo_id, image, error in fresh:
            if image is not None:
                self.loaded.emit(photo_id, image)
            else:
                self.failed.emit(photo_id, error)
