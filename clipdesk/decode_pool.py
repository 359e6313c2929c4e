"""Decoding photos in worker processes while the model runs in this one.

Workers return small uint8 arrays (never tensors, which pickle slowly) and
are started with ``spawn``: ``fork`` deadlocks once torch is loaded.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from clipdesk.imageio import PhotoInfo, ignore_sigint, read_many

Result = tuple[str, PhotoInfo | None, str | None]
Reader = Callable[[list[str], int | None, bool], list[Result]]
CHUNK = 8  # files per task: amortises IPC without hurting load balance
CRASHED = "the image decoder crashed on this file"


def decode(
    paths: Iterable[str], target: int | None, squash: bool, workers: int, reader: Reader = read_many,
    ahead: int = 0,
) -> Iterator[Result]:
    """Yield one result per path, in order, decoding ahead in ``workers`` processes.

    ``reader`` (a module-level function, as workers import it by name) turns a
    list of paths into results without raising; a worker that dies on a file
    costs only that file, reported as an error.

    ``ahead``: how many photos must already be decoding while the caller
    works on the one just yielded. A caller that collects batches passes its
    batch size, so the whole next batch decodes while it runs the model on
    this one (bench/index_throughput.py: with one chunk too few in flight the
    model waited for the last chunk of every batch).
    """
    if workers <= 0:
        for path in paths:
            yield from reader([path], target, squash)
        return
    # Chunks in flight; one more than ``ahead`` needs, since the chunk being
    # yielded is no longer decoding, and one as slack for uneven files.
    depth = max(workers * 4, -(-ahead // CHUNK) + 2)
    pools = _Pools(workers, reader, target, squash)
    window: deque[tuple[list[str], Future, ProcessPoolExecutor]] = deque()
    try:
        for chunk in _chunks(paths):
            window.append(pools.submit(chunk))
            if len(window) >= depth:
                yield from pools.collect(*window.popleft())
        while window:
            yield from pools.collect(*window.popleft())
    finally:
        pools.shutdown()


@contextmanager
def _deaf_to_ctrl_c():
    """Start workers with SIGINT blocked (they inherit this thread's signal mask).

    A terminal's Ctrl-C goes to the whole process group. A worker still
    importing when it arrives, before its initializer ignores SIGINT, would
    print a KeyboardInterrupt traceback; blocked, it never lands in one, and
    the parent stops the workers itself. ProcessPoolExecutor starts workers in
    ``submit``, so submits go through here; a Ctrl-C meant for this process
    waits the few microseconds of a submit. Works from any thread, unlike
    ``signal.signal`` (the app indexes on its inference thread).
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no process-group Ctrl-C of this kind
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _new_pool(workers: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=ignore_sigint)


class _Pools:
    """The worker pool, replaced when a crash breaks it, and a one-worker pool
    that retries the chunks a crash lost one file at a time."""

    def __init__(self, workers: int, reader: Reader, target: int | None, squash: bool) -> None:
        self.workers = workers
        self.args = (target, squash)
        self.reader = reader
        self.pool = _new_pool(workers)
        self.solo: ProcessPoolExecutor | None = None

    def submit(self, chunk: list[str]) -> tuple[list[str], Future, ProcessPoolExecutor]:
        with _deaf_to_ctrl_c():
            try:
                return chunk, self.pool.submit(self.reader, chunk, *self.args), self.pool
            except BrokenProcessPool:  # broke since the last collect
                self._replace(self.pool)
                return chunk, self.pool.submit(self.reader, chunk, *self.args), self.pool

    def collect(self, chunk: list[str], fut: Future, pool: ProcessPoolExecutor) -> list[Result]:
        try:
            return fut.result()
        except (BrokenProcessPool, CancelledError):
            # A decoder crashed a worker (a native bug on a hostile file): every
            # chunk that pool held is lost. Only the first loss replaces the
            # pool; later ones from the same dead pool must not touch the new one.
            self._replace(pool)
            return self._isolate(chunk)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if broken is self.pool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = _new_pool(self.workers)

    def _isolate(self, chunk: list[str]) -> list[Result]:
        """Decode ``chunk`` file by file in one worker, to find the file that crashes it."""
        results: list[Result] = []
        for path in chunk:
            if self.solo is None:
                self.solo = _new_pool(1)
            try:
                with _deaf_to_ctrl_c():
                    future = self.solo.submit(self.reader, [path], *self.args)
                results.extend(future.result())
            except BrokenProcessPool:
                results.append((path, None, CRASHED))
                self.solo.shutdown(wait=True)
                self.solo = None
        return results

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.solo is not None:
            self.solo.shutdown(wait=True)


def _chunks(paths: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
