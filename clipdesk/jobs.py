"""Plumbing for long operations: cancellation and progress, without Qt."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


class CancelToken:
    """Cancel and pause, set from any thread (a signal handler, a GUI button).

    Workers call ``checkpoint()`` between units of work: it blocks while the
    job is paused and says whether to stop.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        self._event.set()
        self._running.set()  # a paused job must wake up to stop

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def pause(self) -> None:
        if not self.cancelled:
            self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def checkpoint(self) -> bool:
        """Wait while paused; return True when the job should stop."""
        self._running.wait()
        return self.cancelled


@dataclass(frozen=True)
class Progress:
    """A snapshot of a job: ``done`` of ``total`` items in ``phase``."""

    phase: str
    done: int
    total: int
    errors: int = 0


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """Default progress sink."""
