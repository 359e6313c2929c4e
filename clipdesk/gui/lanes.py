"""The app's one task manager: three lanes and the job queue (Anki's TaskManager, Picard's ``run_task``).

- ``Lane.IO``: a small pool for file and database reads (thumbnails, previews,
  photo details, folder counts, searches over stored vectors).
- ``Lane.INFERENCE``: one thread, because there is one model (and one GPU):
  model loading, indexing, labelling, captioning, and the text encoding a
  search needs. A short task marked ``urgent`` (a query's encoding) does not
  wait for a long job: the job's progress callback runs waiting urgent tasks
  between its batches, on the same thread.
- ``Lane.WRITER``: one thread for every database write, so writes never
  contend; a job on another lane hands its writes over with ``call``.

``run(lane, fn, on_done, on_failed)`` returns a ``Task`` handle (``cancel()``
drops it if it has not started, and discards its result if it has). Results
come back on the GUI thread through a queued signal. ``TaskManager(inline=True)``
runs everything at once on the calling thread (Picard's FakeThreadPool): tests
that want determinism use it.

Long work goes through ``JobQueue``: one job at a time, each with a kind,
a title, throttled progress, pause and cancel, shown in the status bar.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import count

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from clipdesk.jobs import CancelToken, Progress

log = logging.getLogger(__name__)


class Lane(StrEnum):
    IO = "io"
    INFERENCE = "inference"
    WRITER = "writer"


_local = threading.local()  # which lane the current thread serves


def current_lane() -> Lane | None:
    return getattr(_local, "lane", None)


class Task:
    """A handle on one piece of background work."""

    def __init__(self, lane: Lane, fn: Callable[[], object], on_done, on_failed) -> None:
        self.lane, self.fn, self.on_done, self.on_failed = lane, fn, on_done, on_failed
        self.token = CancelToken()
        self.started = False
        self.finished = False

    def cancel(self) -> None:
        """Not started: it never runs. Running: its result and error are dropped (a job also stops)."""
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled


class _Relay(QObject):
    """Lives on the GUI thread: signals emitted by workers arrive there, queued."""

    done = Signal(object, object)  # task, result
    failed = Signal(object, object)  # task, exception


class _Runnable(QRunnable):
    def __init__(self, manager: TaskManager, task: Task) -> None:
        super().__init__()
        self.manager, self.task = manager, task

    def run(self) -> None:
        _local.lane = self.task.lane
        try:
            self.manager._execute(self.task)  # noqa: SLF001 - the manager's own runnable
        finally:
            _local.lane = None


class TaskManager(QObject):
    """Three lanes; see the module docstring."""

    def __init__(self, io_threads: int = 2, inline: bool = False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.inline = inline
        self.io_threads = io_threads
        self._relay = _Relay(self)
        self._relay.done.connect(self._deliver_done)
        self._relay.failed.connect(self._deliver_failed)
        self.pools: dict[Lane, QThreadPool] = {}
        for lane, threads in ((Lane.IO, io_threads), (Lane.INFERENCE, 1), (Lane.WRITER, 1)):
            pool = QThreadPool(self)
            pool.setMaxThreadCount(threads)
            pool.setObjectName(f"clipdesk-{lane.value}")
            self.pools[lane] = pool
        self._urgent: deque[Task] = deque()
        self._urgent_lock = threading.Lock()
        self._live: set[Task] = set()  # Python side of queued runnables: kept alive until they ran

    # -- running --------------------------------------------------------------------

    def run(self, lane: Lane, fn: Callable[[], object], on_done: Callable[[object], None] | None = None,
            on_failed: Callable[[BaseException], None] | None = None, *, urgent: bool = False) -> Task:
        """Run ``fn()`` on ``lane``; ``on_done(result)`` or ``on_failed(exc)`` follow on the GUI thread."""
        task = Task(lane, fn, on_done, on_failed)
        if self.inline:
            saved = current_lane()
            _local.lane = lane
            try:
                self._execute(task, deliver_now=True)
            finally:
                _local.lane = saved
            return task
        self._live.add(task)
        if urgent and lane is Lane.INFERENCE:
            with self._urgent_lock:
                self._urgent.append(task)
            # Runs them if the lane is idle; a running job runs them between its batches first.
            self.pools[lane].start(_Drain(self))
        else:
            self.pools[lane].start(_Runnable(self, task))
        return task

    def call(self, lane: Lane, fn: Callable[[], object]) -> object:
        """Run ``fn()`` on ``lane`` and wait for its result.

        For jobs handing their writes to the writer lane; the GUI thread uses it once, to open the
        library at launch before any window exists.
        """
        if self.inline or current_lane() is lane:
            return fn()
        done = threading.Event()
        box: dict[str, object] = {}

        def wrapped():
            try:
                box["result"] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = exc
            finally:
                done.set()

        self.pools[lane].start(_Plain(wrapped, lane))
        done.wait()
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box.get("result")

    def service(self) -> None:
        """Run urgent inference tasks waiting now (called by long jobs between batches, on their thread)."""
        if current_lane() is not Lane.INFERENCE:
            return
        while True:
            with self._urgent_lock:
                if not self._urgent:
                    return
                task = self._urgent.popleft()
            self._execute(task)

    def _execute(self, task: Task, deliver_now: bool = False) -> None:
        if task.cancelled or task.started:
            self._live.discard(task)
            return
        task.started = True
        try:
            result = task.fn()
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the GUI thread
            if not task.cancelled:
                log.debug("background task failed", exc_info=True)
            if deliver_now:
                self._deliver_failed(task, exc)
            else:
                self._relay.failed.emit(task, exc)
        else:
            if deliver_now:
                self._deliver_done(task, result)
            else:
                self._relay.done.emit(task, result)

    def _deliver_done(self, task: Task, result) -> None:
        task.finished = True
        self._live.discard(task)
        if not task.cancelled and task.on_done is not None:
            _call_unless_gone(task.on_done, result)

    def _deliver_failed(self, task: Task, exc: BaseException) -> None:
        task.finished = True
        self._live.discard(task)
        if task.cancelled:
            return
        if task.on_failed is not None:
            _call_unless_gone(task.on_failed, exc)
        else:
            log.error("background task failed: %s", exc, exc_info=exc)

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Wait until every lane is idle (tests, shutdown)."""
        return all(pool.waitForDone(timeout_ms) for pool in self.pools.values())

    def shutdown(self, timeout_ms: int = 30000) -> None:
        for task in list(self._live):
            if not task.started:
                task.cancel()
        self.wait(timeout_ms)


def _call_unless_gone(callback: Callable[[object], None], value) -> None:
    """Deliver a result, unless the widget it was for has been closed meanwhile.

    A signal connected to a slot is dropped by Qt when the receiver goes; a
    callback is ours to drop: a bound method of a deleted QObject is skipped,
    and a closure that reaches a deleted widget stops at shiboken's error.
    """
    target = getattr(callback, "__self__", None)
    if isinstance(target, QObject) and not shiboken6.isValid(target):
        return
    try:
        callback(value)
    except RuntimeError as exc:
        if "already deleted" not in str(exc):
            raise
        log.debug("a result arrived for a closed widget: %s", exc)


_default: TaskManager | None = None


def default_tasks() -> TaskManager:
    """The app's task manager: one per process, so there are three lanes in all, whoever asks."""
    global _default
    if _default is None:
        _default = TaskManager()
    return _default


class _Drain(QRunnable):
    def __init__(self, manager: TaskManager) -> None:
        super().__init__()
        self.manager = manager

    def run(self) -> None:
        _local.lane = Lane.INFERENCE
        try:
            self.manager.service()
        finally:
            _local.lane = None


class _Plain(QRunnable):
    def __init__(self, fn: Callable[[], None], lane: Lane) -> None:
        super().__init__()
        self.fn, self.lane = fn, lane

    def run(self) -> None:
        _local.lane = self.lane
        try:
            self.fn()
        finally:
            _local.lane = None


# -- the job queue --------------------------------------------------------------------


@dataclass(frozen=True)
class JobStatus:
    """What the status bar shows about a running job."""

    phase: str
    done: int
    total: int
    errors: int
    rate: float  # items per second over the last few seconds
    eta_s: float | None
    paused: bool


_ids = count(1)


@dataclass(eq=False)
class Job:
    """One long piece of work in the queue: ``fn(progress, cancel)`` on ``lane``."""

    kind: str  # index | labels | captions | export | …
    title: str
    fn: Callable[[Callable[[Progress], None], CancelToken], object]
    lane: Lane = Lane.INFERENCE
    on_done: Callable[[object], None] | None = None
    on_failed: Callable[[BaseException], None] | None = None
    roots: list[str] = field(default_factory=list)  # an index job's folders, for the sidebar
    id: int = field(default_factory=lambda: next(_ids))
    token: CancelToken = field(default_factory=CancelToken)
    status: JobStatus | None = None
    state: str = "queued"  # queued | running | done | failed | cancelled

    @property
    def paused(self) -> bool:
        return self.token.paused


class JobQueue(QObject):
    """Long jobs one after another, each visible with progress, pause and cancel."""

    started = Signal(object)  # Job
    progress = Signal(object, object)  # Job, JobStatus
    finished = Signal(object, object)  # Job, result
    failed = Signal(object, object)  # Job, exception
    changed = Signal()  # the queue's contents changed

    def __init__(self, tasks: TaskManager, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.current: Job | None = None
        self.pending: list[Job] = []

    def submit(self, job: Job) -> Job:
        self.pending.append(job)
        self.changed.emit()
        if self.current is None:
            self._next()
        return job

    def jobs(self, kind: str | None = None) -> list[Job]:
        every = ([self.current] if self.current is not None else []) + self.pending
        return [j for j in every if kind is None or j.kind == kind]

    def pause(self) -> None:
        if self.current is not None:
            self.current.token.pause()

    def resume(self) -> None:
        if self.current is not None:
            self.current.token.resume()

    def cancel(self, job: Job | None = None) -> None:
        """Cancel ``job`` (default: the running one); a queued one is dropped."""
        job = job or self.current
        if job is None:
            return
        if job in self.pending:
            self.pending.remove(job)
            job.state = "cancelled"
            job.token.cancel()
            self.changed.emit()
        else:
            job.token.cancel()

    def cancel_all(self) -> None:
        for job in list(self.pending):
            self.cancel(job)
        self.cancel()

    def _next(self) -> None:
        if self.current is not None or not self.pending:
            return
        job = self.pending.pop(0)
        self.current = job
        job.state = "running"
        self.started.emit(job)
        self.changed.emit()
        reporter = _Reporter(self, job)
        self.tasks.run(job.lane, lambda: job.fn(reporter, job.token),
                       lambda result: self._done(job, result), lambda exc: self._failed(job, exc))

    def _done(self, job: Job, result) -> None:
        job.state = "cancelled" if job.token.cancelled else "done"
        self.current = None
        try:
            if job.on_done is not None:
                job.on_done(result)
            self.finished.emit(job, result)
        finally:
            self._after(job)

    def _failed(self, job: Job, exc: BaseException) -> None:
        job.state = "failed"
        self.current = None
        try:
            if job.on_failed is not None:
                job.on_failed(exc)
            self.failed.emit(job, exc)
        finally:
            self._after(job)

    def _after(self, job: Job) -> None:
        self.changed.emit()
        self._next()


class _ProgressRelay(QObject):
    status = Signal(object, object)  # Job, JobStatus


class _Reporter:
    """The progress callback a job gets: throttled to 20 updates a second, rate and ETA, and on the
    inference lane a moment for urgent tasks (a search's encoding) between the job's batches."""

    def __init__(self, queue: JobQueue, job: Job) -> None:
        self.queue, self.job = queue, job
        self._samples: deque[tuple[float, int]] = deque(maxlen=20)
        self._last = 0.0
        self._relay = _ProgressRelay()  # made on the GUI thread: its signal reaches the queue there, queued
        self._relay.status.connect(queue.progress)

    def __call__(self, p: Progress) -> None:
        if self.job.lane is Lane.INFERENCE:
            self.queue.tasks.service()
        now = time.monotonic()
        self._samples.append((now, p.done))
        final = bool(p.total) and p.done >= p.total
        if now - self._last < 0.05 and not final:
            return
        self._last = now
        rate, eta = 0.0, None
        if len(self._samples) >= 2:
            (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
            if t1 > t0 and d1 > d0:
                rate = (d1 - d0) / (t1 - t0)
                eta = (p.total - p.done) / rate if p.total else None
        status = JobStatus(p.phase, p.done, p.total, p.errors, rate, eta, self.job.token.paused)
        self.job.status = status
        self._relay.status.emit(self.job, status)
