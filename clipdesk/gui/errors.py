"""Error dialogs and the last-resort exception hooks.

Two paths lead here, as in Anki and napari: a worker's ``failed`` signal
calls ``show_error(parent, exc)``, and anything nobody caught reaches the
hooks that ``install_excepthooks`` puts on ``sys`` and ``threading``. A
``ClipdeskError`` already carries a user-facing sentence, so it is shown as
is; anything else is a bug, shown as one plain sentence with the traceback
tucked under "Show Details…" and written to the log file.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from clipdesk.errors import ClipdeskError

UNEXPECTED = "clipdesk hit an unexpected problem and stopped that action. Your photos and library are safe."

log = logging.getLogger(__name__)
# Set while the hooks are installed, so every dialog can say where the details went.
_log_path: Path | None = None


def error_box(parent: QWidget | None, exc: BaseException) -> QMessageBox:
    """The dialog ``show_error`` would show, not yet shown (tests inspect it)."""
    box = QMessageBox(parent)
    box.setWindowTitle("clipdesk")
    if isinstance(exc, ClipdeskError):
        box.setIcon(QMessageBox.Icon.Warning)
        box.setText(str(exc) or type(exc).__name__)
        return box
    box.setIcon(QMessageBox.Icon.Critical)
    box.setText(UNEXPECTED)
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if _log_path is not None:
        box.setInformativeText(f"The details were saved to {_log_path}.")
        details += f"\nLog file: {_log_path}\n"
    box.setDetailedText(details)
    return box


def show_error(parent: QWidget | None, exc: BaseException) -> None:
    """Show ``exc`` in a modal message box (GUI thread only).

    Args:
        parent: the window the box belongs to, or None.
        exc: a ``ClipdeskError`` (its message is the text) or any other
            exception (a plain sentence; the traceback goes to the log and
            to "Show Details…").
    """
    if not isinstance(exc, ClipdeskError):
        log.error("Unexpected error", exc_info=(type(exc), exc, exc.__traceback__))
    error_box(parent, exc).exec()


class _Relay(QObject):
    """Carries exceptions from any thread to a dialog on the GUI thread."""

    raised = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._showing = False
        # Queued even from the GUI thread: the dialog opens from the event
        # loop, not from inside whatever code was unwinding.
        self.raised.connect(self._show, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def _show(self, exc: BaseException) -> None:
        if self._showing:
            return  # one dialog at a time; the others are in the log already
        self._showing = True
        try:
            error_box(QApplication.activeWindow(), exc).exec()
        except BaseException:  # noqa: BLE001 - escaping here would re-enter the hook
            try:
                log.exception("could not show the error dialog")
            except Exception:  # noqa: BLE001 - nothing left to report to
                pass
        finally:
            self._showing = False


def install_excepthooks(log_path: Path) -> Callable[[], None]:
    """Log uncaught exceptions to ``log_path`` and show them in a dialog.

    Call on the GUI thread once the QApplication exists. Exceptions from
    worker threads are marshalled to the GUI thread through a queued signal.
    Returns a function that restores the previous hooks and closes the log.
    """
    global _log_path
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    root = logging.getLogger("clipdesk")
    root.addHandler(handler)
    # The app's log must work whatever the process configured before (the
    # CLI silences the root logger), so this logger gets its own level.
    previous_level = root.level
    root.setLevel(logging.INFO)
    relay = _Relay()
    previous_sys, previous_thread = sys.excepthook, threading.excepthook
    _log_path = log_path

    def report(exc_type, exc, tb, where: str) -> None:
        try:
            log.error("Uncaught exception %s", where, exc_info=(exc_type, exc, tb))
        except Exception:  # noqa: BLE001 - a broken log must not hide the dialog
            pass
        if exc is None:  # threading may pass only the type
            exc = RuntimeError(exc_type.__name__)
        relay.raised.emit(exc)

    def sys_hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous_sys(exc_type, exc, tb)  # Ctrl-C in the terminal is not a bug
            return
        # PySide calls this hook from pool threads too (an exception escaping QRunnable.run).
        report(exc_type, exc, tb, f"in thread {threading.current_thread().name}")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return  # what the default threading hook does too
        name = args.thread.name if args.thread is not None else "?"
        report(args.exc_type, args.exc_value, args.exc_traceback, f"in thread {name}")

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook

    def uninstall() -> None:
        global _log_path
        if sys.excepthook is sys_hook:
            sys.excepthook = previous_sys
        if threading.excepthook is thread_hook:
            threading.excepthook = previous_thread
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()
        relay.deleteLater()
        _log_path = None

    return uninstall
