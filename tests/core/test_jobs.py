"""Cancel and pause tokens work across threads."""

from __future__ import annotations

import threading

from clipdesk.jobs import CancelToken


def test_checkpoint_blocks_while_paused_and_cancel_wakes_it():
    token = CancelToken()
    assert token.checkpoint() is False
    token.pause()
    assert token.paused
    passed = threading.Event()
    outcome = []

    def worker():
        outcome.append(token.checkpoint())
        passed.set()

    t = threading.Thread(target=worker)
    t.start()
    assert not passed.wait(0.2)  # still paused
    token.resume()
    assert passed.wait(5) and outcome == [False]
    t.join()

    token.pause()
    passed.clear()
    t = threading.Thread(target=worker)
    t.start()
    token.cancel()
    assert passed.wait(5) and outcome[-1] is True
    assert not token.paused
    token.pause()  # pausing a cancelled job does nothing
    assert not token.paused and token.checkpoint() is True
    t.join()
