"""Error dialogs: user-facing messages, plain sentence + details for bugs, hooks across threads."""

from __future__ import annotations

import sys
import threading

import pytest
from PySide6.QtCore import QRunnable, QThreadPool
from PySide6.QtWidgets import QMessageBox

from clipdesk.errors import QueryError
from clipdesk.gui.errors import UNEXPECTED, error_box, install_excepthooks, show_error


@pytest.fixture
def shown(monkeypatch):
    """Record message boxes instead of running their modal loop."""
    boxes: list[dict] = []

    def fake_exec(box):
        boxes.append({
            "gui_thread": threading.current_thread() is threading.main_thread(),
            "text": box.text(),
            "informative": box.informativeText(),
            "details": box.detailedText(),
        })
        return 0

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    return boxes


def _raise(exc):
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


def test_clipdesk_error_shows_its_message(qapp, shown):
    show_error(None, QueryError("The query has only negatives; say what to look for too."))
    assert shown == [{"gui_thread": True, "text": "The query has only negatives; say what to look for too.",
                      "informative": "", "details": ""}]


def test_other_exception_shows_plain_sentence_and_details(qapp, shown):
    show_error(None, _raise(ZeroDivisionError("division by zero")))
    (box,) = shown
    assert box["text"] == UNEXPECTED
    assert "ZeroDivisionError: division by zero" in box["details"]
    assert "Traceback" in box["details"]
    assert "ZeroDivisionError" not in box["text"]


def test_thread_exception_becomes_a_dialog_on_the_gui_thread(qtbot, shown, tmp_path):
    log_file = tmp_path / "logs" / "clipdesk.log"
    uninstall = install_excepthooks(log_file)
    try:
        def boom():
            raise ValueError("kaboom in a worker")

        worker = threading.Thread(target=boom, name="scan-worker")
        worker.start()
        worker.join()
        assert shown == []  # nothing touched widgets from the worker thread
        qtbot.waitUntil(lambda: len(shown) == 1, timeout=5000)
    finally:
        uninstall()
    (box,) = shown
    assert box["gui_thread"]
    assert box["text"] == UNEXPECTED
    assert "ValueError: kaboom in a worker" in box["details"]
    assert str(log_file) in box["informative"]
    logged = log_file.read_text()
    assert "kaboom in a worker" in logged and "scan-worker" in logged


def test_exception_in_a_pool_runnable_becomes_a_dialog(qtbot, shown, tmp_path):
    class Failing(QRunnable):
        def run(self):
            raise OSError("disk went away")

    uninstall = install_excepthooks(tmp_path / "clipdesk.log")
    try:
        pool = QThreadPool()
        pool.start(Failing())
        pool.waitForDone()
        qtbot.waitUntil(lambda: len(shown) == 1, timeout=5000)
    finally:
        uninstall()
    assert shown[0]["gui_thread"]
    assert "OSError: disk went away" in shown[0]["details"]


def test_main_thread_hook_logs_and_shows(qtbot, shown, tmp_path):
    log_file = tmp_path / "clipdesk.log"
    uninstall = install_excepthooks(log_file)
    try:
        exc = _raise(KeyError("missing"))
        sys.excepthook(type(exc), exc, exc.__traceback__)
        qtbot.waitUntil(lambda: len(shown) == 1, timeout=5000)
    finally:
        uninstall()
    assert "KeyError: 'missing'" in shown[0]["details"]
    assert "KeyError" in log_file.read_text()


def test_failing_dialog_does_not_recurse(qtbot, monkeypatch, tmp_path):
    calls = []

    def broken_exec(box):
        calls.append(box.text())
        raise RuntimeError("the dialog itself broke")

    monkeypatch.setattr(QMessageBox, "exec", broken_exec)
    log_file = tmp_path / "clipdesk.log"
    uninstall = install_excepthooks(log_file)
    try:
        exc = _raise(ValueError("first"))
        sys.excepthook(type(exc), exc, exc.__traceback__)
        qtbot.waitUntil(lambda: "could not show the error dialog" in log_file.read_text(), timeout=5000)
    finally:
        uninstall()
    assert calls == [UNEXPECTED]
    assert "the dialog itself broke" in log_file.read_text()


def test_uninstall_restores_hooks(qapp, tmp_path):
    before_sys, before_thread = sys.excepthook, threading.excepthook
    uninstall = install_excepthooks(tmp_path / "clipdesk.log")
    assert sys.excepthook is not before_sys and threading.excepthook is not before_thread
    uninstall()
    assert sys.excepthook is before_sys and threading.excepthook is before_thread
    # Without the hooks there is no log path to mention.
    assert error_box(None, _raise(ValueError("x"))).informativeText() == ""
