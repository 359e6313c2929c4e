"""Named crash points: where tests make a writer die mid-transaction, on purpose.

Killing a process at a random moment (tests/e2e/test_crash_safety.py) only
shows that *some* moments are safe. A crash point makes one chosen moment
happen every time: a test sets ``CLIPDESK_CRASH_AT=NAME`` or ``NAME:N`` and
the N-th time (default the first) the code reaches ``crash_point(NAME)``,
the process prints one line to stderr and ends with ``os._exit(EXIT_CODE)``:
no rollback, no ``finally``, no atexit, as after ``kill -9``.

The variable is read once, at import: with it unset, ``crash_point`` is one
comparison, so the calls can stay in the hot write paths. It is for tests
only; nothing in the app sets it.
"""

from __future__ import annotations

import os
import sys
import threading

ENV = "CLIPDESK_CRASH_AT"
EXIT_CODE = 86  # not a code anything else in clipdesk exits with
MARKER = "clipdesk: crash point"

# Every point, so that a misspelt name in a test fails at once instead of
# never firing. "written": rows are flushed to SQLite inside the transaction,
# not committed; "committed": the transaction has just committed.
POINTS = (
    "index.batch-written",  # indexer._write_batch: a batch's photos and embeddings
    "index.batch-committed",
    "labels.batch-written",  # labels.run.label_library: a batch's labels and the resumable state
    "labels.batch-committed",
    "captions.batch-written",  # captions.run.caption_library: a batch's automatic captions
    "captions.batch-committed",
    "folder-removal.written",  # store.queries.remove_folder: the photos and the folder row deleted
    "folder-removal.committed",
    "feedback.written",  # labels.feedback.set_feedback: the accepted/rejected row
    "feedback.committed",
)


def parse(value: str | None) -> tuple[str, int] | None:
    """``"NAME"`` or ``"NAME:N"`` -> ``(NAME, N)``; empty or unset -> None.

    Raises:
        ValueError: an unknown point or a count that is not a positive integer.
    """
    if not value:
        return None
    name, sep, count = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value!r}: unknown crash point {name!r}; known: {', '.join(POINTS)}")
    try:
        n = int(count) if sep else 1
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV}={value!r}: the count after ':' must be a positive integer")
    return name, n


_TARGET = parse(os.environ.get(ENV))
_lock = threading.Lock()
_reached = 0


def crash_point(name: str) -> None:
    """End the process here if ``CLIPDESK_CRASH_AT`` names this point and its count is reached."""
    if _TARGET is None or name != _TARGET[0]:
        return
    global _reached
    with _lock:  # writers run on one lane, but a count must never skip or repeat
        _reached += 1
        if _reached < _TARGET[1]:
            return
        sys.stderr.write(f"{MARKER} {name}:{_reached}\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
