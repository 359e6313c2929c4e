"""Plumbing for long operations: cancellation and progress, without Qt."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


class CancelToken:
    """Set from any thread (a signal handler, a GUI button); polled by workers."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


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
