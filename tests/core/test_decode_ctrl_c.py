"""Decode workers start with SIGINT blocked: a terminal's Ctrl-C, sent to the whole process group, never
lands in a worker still importing (it used to print a KeyboardInterrupt traceback); the parent stops them."""

from __future__ import annotations

import signal

import pytest

from clipdesk import decode_pool

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks only")


def sigint_blocked(chunk, target, squash):
    """A reader (module-level, so spawned workers import it) answering whether SIGINT is blocked there."""
    import signal

    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    return [(path, None, str(blocked)) for path in chunk]


def test_workers_start_with_sigint_blocked():
    results = list(decode_pool.decode([f"p{i}" for i in range(20)], None, False, workers=2, reader=sigint_blocked))
    assert [r[2] for r in results] == ["True"] * 20
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # this process hears Ctrl-C again


def test_a_worker_started_otherwise_would_hear_it():
    """Control: a pool whose worker is started outside the block has SIGINT unblocked there."""
    pool = decode_pool._new_pool(1)  # noqa: SLF001
    try:
        assert pool.submit(sigint_blocked, ["x"], None, False).result()[0][2] == "False"
    finally:
        pool.shutdown()
