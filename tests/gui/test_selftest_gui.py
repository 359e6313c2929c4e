"""``clipdesk-gui --self-test`` and ``clipdesk-gui PATH`` (what desktop files pass)."""

from __future__ import annotations

import os
import subprocess
import sys

from clipdesk.gui.app import build_parser


def test_self_test_runs_the_real_window_and_exits_zero(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}  # proves it never needs the user's settings or library
    env.pop("CLIPDESK_HOME", None)
    done = subprocess.run([sys.executable, "-m", "clipdesk.gui.app", "--self-test"], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "similar search: red_circle_copy.jpg first" in done.stdout
    assert "window shown" in done.stdout
    assert not any((tmp_path / d).exists() for d in (".config", ".local"))


def test_paths_are_opened(tmp_path):
    args = build_parser().parse_args([str(tmp_path), "--library", "x"])
    assert args.paths == [str(tmp_path)] and not args.self_test
