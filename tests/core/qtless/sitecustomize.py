"""Qt-less runs: with this folder on PYTHONPATH and CLIPDESK_BLOCK_QT=1, no Python process can import Qt.

napari tests its core in an environment without Qt; clipdesk does the same
with an import blocker rather than a second multi-GB environment. Python
imports ``sitecustomize`` at start-up, so the blocker is in place before
pytest, its plugins or any test runs, and in every subprocess and decode
worker they start (they inherit the environment). ``scripts/test.sh`` runs
``tests/core`` once this way (with ``-p no:pytest-qt``, which needs Qt);
``tests/core/test_qt_blocker.py`` checks that the blocker really blocks.
"""

import os
import sys

BLOCKED = ("PySide6", "shiboken6", "PyQt5", "PyQt6")


class QtBlocker:
    """A meta-path finder that makes the Qt bindings look absent: importing them raises ModuleNotFoundError."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (CLIPDESK_BLOCK_QT=1: Qt is blocked)", name=name)
        return None


if os.environ.get("CLIPDESK_BLOCK_QT") == "1" and not any(isinstance(f, QtBlocker) for f in sys.meta_path):
    sys.meta_path.insert(0, QtBlocker())
