"""Launching: the window appears at once and the model loads after it."""

from __future__ import annotations

import argparse
import threading

from clipdesk.gui import app as app_mod


def test_launch_shows_the_window_before_the_model_is_loaded(qtbot, tmp_path, monkeypatch):
    from clipdesk.engine.clip import ClipEngine

    release = threading.Event()
    real_load = ClipEngine._load

    def slow_load(self):
        assert release.wait(60)  # the model takes as long as the test says
        real_load(self)

    monkeypatch.setattr(ClipEngine, "_load", slow_load)
    args = argparse.Namespace(library=str(tmp_path / "lib"), model="tiny-random", device="cpu")
    window, close = app_mod.launch(args)
    try:
        assert window.isVisible() and not window.controller.engine.loaded
        assert window.model_label.text() == "Loading model…"
        release.set()
        qtbot.waitUntil(lambda: window.model_label.text() == "Model ready", timeout=60000)
        assert window.controller.engine.loaded
        assert window.settings.last_library == str(tmp_path / "lib")
    finally:
        release.set()
        close()


def test_no_display_means_a_message_not_a_crash(monkeypatch, capsys, tmp_path):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(app_mod.sys, "platform", "linux")
    args = argparse.Namespace(library=str(tmp_path / "lib"), model=None, device="auto")
    assert app_mod.run(args) == 0
    assert "no display found" in capsys.readouterr().err
