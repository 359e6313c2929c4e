"""The Qt-less run of ``tests/core`` (``scripts/test.sh``) really runs without Qt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

QTLESS = Path(__file__).with_name("qtless")
BLOCKED = ("PySide6", "shiboken6", "PyQt5", "PyQt6")


def qtless_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, CLIPDESK_BLOCK_QT="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(QTLESS), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def test_the_blocker_makes_qt_unimportable_and_the_cli_falls_back(tmp_path):
    code = (
        "import sys\n"
        "try:\n    import PySide6\nexcept ModuleNotFoundError as exc:\n    print('blocked', exc.name)\n"
        "else:\n    sys.exit('PySide6 imported')\n"
        "from clipdesk.cli import main\n"
        "code = main([])\n"  # no subcommand: the app, which cannot start without Qt
        "assert not [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6')]\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=qtless_env(CLIPDESK_HOME=str(tmp_path)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "blocked PySide6"
    assert "the desktop app is not part of this build" in proc.stderr and "usage: clipdesk" in proc.stderr


def test_without_the_switch_the_folder_changes_nothing():
    pytest.importorskip("PySide6")  # installed here: the blocker, not its absence, stops the import above
    env = qtless_env()
    env.pop("CLIPDESK_BLOCK_QT")
    proc = subprocess.run([sys.executable, "-c", "import PySide6.QtCore"], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(os.environ.get("CLIPDESK_BLOCK_QT") != "1", reason="only in the Qt-less run")
def test_this_run_has_no_qt():
    assert [m for m in sys.modules if m.split(".")[0] in BLOCKED] == []
    with pytest.raises(ImportError):
        import PySide6  # noqa: F401
