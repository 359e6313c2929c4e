"""The PySide6 6.12 / Python 3.11 refcount guard (clipdesk.gui.pyside_compat)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject

import clipdesk.gui  # noqa: F401 - importing the package applies the guard
from clipdesk.gui import pyside_compat


def test_none_survives_many_void_calls():
    obj = QObject()
    for _ in range(50_000):  # without the guard an affected build aborts long before this
        obj.setObjectName("")
    assert sys.getrefcount(None) > 1000


def test_guard_is_applied_only_where_needed():
    assert pyside_compat.apply() == (pyside_compat._applied)
    if sys.version_info >= (3, 12):
        assert not pyside_compat._applied
