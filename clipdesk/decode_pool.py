"""Decoding photos in worker processes while the model runs in this one.

Workers return small uint8 arrays (never tensors, which pickle slowly) and
are started with ``spawn``: ``fork`` deadlocks once torch is loaded.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator

from clipdesk.imageio import PhotoInfo, ignore_sigint, read_many

Result = tuple[str, PhotoInfo | None, str | None]
CHUNK = 8  # files per task: amortises IPC without hurting load balance


def decode(paths: Iterable[str], target: int | None, squash: bool, workers: int) -> Iterator[Result]:
    """Yield one result per path, in order, decoding ahead in ``workers`` processes."""
    if workers <= 0:
        for path in paths:
            yield from read_many([path], target, squash)
        return
    chunks = _chunks(paths)
    pool = _new_pool(workers)
    window: deque[tuple[list[str], Future]] = deque()
    try:
        for chunk in chunks:
            window.append((chunk, pool.submit(read_many, chunk, target, squash)))
            if len(window) >= workers * 4:
                chunk0, fut = window.popleft()
                results, pool = _result(fut, chunk0, pool, workers, target, squash)
                yield from results
        while window:
            chunk0, fut = window.popleft()
            results, pool = _result(fut, chunk0, pool, workers, target, squash)
            yield from results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _new_pool(workers: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=ignore_sigint)


def _result(fut: Future, chunk: list[str], pool, workers, target, squash):
    try:
        return fut.result(), pool
    except BrokenProcessPool:
        # A decoder crashed a worker (a native bug on a hostile file). Find the
        # culprit by retrying the chunk one file at a time in fresh pools.
        pool.shutdown(wait=False, cancel_futures=True)
        results = []
        for path in chunk:
            solo = _new_pool(1)
            try:
                results.extend(solo.submit(read_many, [path], target, squash).result())
            except BrokenProcessPool:
                results.append((path, None, "the image decoder crashed on this file"))
            finally:
                solo.shutdown(wait=True)
        return results, _new_pool(workers)


def _chunks(paths: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
