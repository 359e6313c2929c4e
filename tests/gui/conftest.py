"""GUI test setup: offscreen Qt and a throwaway QSettings file per test."""

from __future__ import annotations

import os

# Must be set before any QApplication exists (pytest-qt creates it lazily).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_settings(tmp_path):
    """Point QSettings at an INI file under ``tmp_path`` (napari's ``_fresh_settings``).

    The INI backend is also the one that hands values back as strings, so
    the typed settings layer is exercised the hard way.
    """
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    yield tmp_path / "qsettings"


@pytest.fixture(autouse=True)
def fresh_lanes():
    """Each test gets the app's three lanes new (``lanes.default_tasks``), and leaves them idle."""
    from clipdesk.gui import lanes

    lanes._default = None  # noqa: SLF001 - the one per-process manager, reset between tests
    yield
    if lanes._default is not None:  # noqa: SLF001
        lanes._default.shutdown(60_000)  # noqa: SLF001
        lanes._default = None  # noqa: SLF001


@pytest.fixture
def window(qtbot, tmp_path):
    """The main window on an empty library with the tiny test model, loaded."""
    from clipdesk.config import CoreConfig
    from clipdesk.gui.controller import LibraryController
    from clipdesk.gui.main_window import MainWindow
    from clipdesk.gui.settings import Settings

    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=4))
    win = MainWindow(controller, Settings())
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(controller.model_state, timeout=60000, check_params_cb=lambda s, m: s == "ready"):
        controller.load_model()
    yield win
    controller.shutdown()


@pytest.fixture
def photos(tmp_path, coco_images):
    """Six real photos and a re-encoded, rescaled copy of the first (``copy_small.jpg``)."""
    import shutil

    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for src in coco_images[:6]:
        shutil.copy(src, folder / src.name)
    with Image.open(folder / coco_images[0].name) as im:
        im.resize((im.width * 7 // 10, im.height * 7 // 10)).save(folder / "copy_small.jpg", quality=60)
    return folder
