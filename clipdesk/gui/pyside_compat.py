"""Guard against a PySide6 refcount bug on Python 3.11 (seen with 6.12.0).

Shiboken hands back ``None`` from void methods without taking a reference,
as if ``None`` were immortal, which it is only from Python 3.12 on. On 3.11
the count of ``None`` then drops by one per call (``setObjectName``,
``QTimer.start``, a model's ``data()`` returning ``None``…) and the
interpreter aborts with "Fatal Python error: none_dealloc" after a few
thousand calls: seconds of scrolling a grid, or at exit. ``True``/``False``
were seen to suffer the same.

:func:`apply` measures the leak, and only if it is there gives those
singletons a count so large it can never reach zero, which is what Python
3.12 does for them anyway. Nothing changes on an unaffected build.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject

_PROBE_CALLS = 64
_BALLAST = 1 << 48  # a million void calls a second would take nine years to use it up
_applied = False


def leaks_none() -> bool:
    """True if calling a void PySide method costs ``None`` a reference."""
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_CALLS):
        probe.setObjectName("")
    return before - sys.getrefcount(None) >= _PROBE_CALLS // 2


def apply() -> bool:
    """Make ``None``, ``True`` and ``False`` effectively immortal if PySide leaks them.

    Returns:
        True if the workaround is (now) in place.
    """
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython" or not leaks_none():
        return False
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every object in a CPython 3.11 release build.
        ctypes.c_ssize_t.from_address(id(singleton)).value += _BALLAST
    _applied = True
    return True
