"""The Qt desktop app: the only package that imports PySide6."""

from clipdesk.gui import pyside_compat as _pyside_compat

_pyside_compat.apply()  # before any widget: see pyside_compat for the PySide6 6.12 / Python 3.11 bug
