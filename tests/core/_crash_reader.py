"""A decode reader for worker-pool tests: kills its worker process on any
file whose name contains CRASH, as a native decoder bug would.

A module of its own so that spawned workers can import it by name.
"""

from __future__ import annotations

import os

from clipdesk.imageio import read_many

GATE = "gate.fifo"


def crash_on_marker(paths: list[str], target: int | None, squash: bool = False):
    for path in paths:
        if "CRASH" in os.path.basename(path):
            # With a gate FIFO beside the file, crash only once the test writes
            # to it (and only the first time: the gate is removed).
            gate = os.path.join(os.path.dirname(path), GATE)
            if os.path.exists(gate):
                with open(gate, "rb") as fh:
                    fh.read()
                os.unlink(gate)
            os._exit(70)  # no exception, no cleanup: the process is simply gone
    return read_many(paths, target, squash)
