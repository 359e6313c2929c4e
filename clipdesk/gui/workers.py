"""Background work for the GUI: QRunnables that run core functions.

Three lanes (Picard + Anki): the global pool for IO, one thread for model
loading and indexing (one model, one GPU), one thread for searches. Results
come back only through queued signals, never by touching widgets.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from clipdesk.jobs import CancelToken, Progress

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    progress = Signal(object)
    result = Signal(object)
    failed = Signal(object)
    finished = Signal()


class FunctionWorker(QRunnable):
    """Runs ``fn()`` off the GUI thread; reports its result or exception."""

    def __init__(self, fn: Callable[[], object]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = WorkerSignals()

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the GUI as a signal
            log.exception("background job failed")
            self.signals.failed.emit(exc)
        else:
            self.signals.result.emit(result)
        finally:
            self.signals.finished.emit()


@dataclass(frozen=True)
class IndexStatus:
    """What the status bar shows about a running index job."""

    phase: str
    done: int
    total: int
    errors: int
    rate: float  # photos per second over the last few seconds
    eta_s: float | None
    paused: bool


class IndexWorker(FunctionWorker):
    """Runs ``job(progress, cancel)``; turns core Progress into IndexStatus signals."""

    def __init__(self, job: Callable[[Callable[[Progress], None], CancelToken], object]) -> None:
        super().__init__(lambda: job(self._on_progress, self.token))
        self.token = CancelToken()
        self._samples: deque[tuple[float, int]] = deque(maxlen=20)
        self._last_emit = 0.0

    def _on_progress(self, p: Progress) -> None:
        now = time.monotonic()
        self._samples.append((now, p.done))
        final = p.total and p.done >= p.total
        if now - self._last_emit < 0.05 and not final:  # at most 20 updates a second
            return
        self._last_emit = now
        rate, eta = 0.0, None
        if len(self._samples) >= 2:
            (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
            if t1 > t0 and d1 > d0:
                rate = (d1 - d0) / (t1 - t0)
                eta = (p.total - p.done) / rate if p.total else None
        self.signals.progress.emit(IndexStatus(p.phase, p.done, p.total, p.errors, rate, eta, self.token.paused))


def single_lane(name: str) -> QThreadPool:
    """A pool with one thread: jobs on it run one after another."""
    pool = QThreadPool()
    pool.setMaxThreadCount(1)
    pool.setObjectName(name)
    return pool
