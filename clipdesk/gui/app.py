"""Starting the desktop app: QApplication, error hooks, the main window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from clipdesk.paths import library_dir


def display_available() -> bool:
    """Whether Qt can open a window here (or was told to render offscreen)."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True  # macOS and Windows always have a screen session for a desktop user


def run(args) -> int:
    """Open the main window; returns the process exit code."""
    if not display_available():
        print(
            "clipdesk: no display found (DISPLAY / WAYLAND_DISPLAY are not set), so the window cannot open.\n"
            "The command line does everything without one: clipdesk index FOLDER, clipdesk search WORDS "
            "(clipdesk --help lists all).",
            file=sys.stderr,
        )
        return 0
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window, close = launch(args)
    try:
        return app.exec()
    finally:
        close()


def launch(args):
    """Show the window and start background work; returns (window, close).

    Split from ``run`` so tests can drive a launched app without entering
    (and quitting) the application's event loop.
    """
    from PySide6.QtCore import QCoreApplication, QSettings

    from clipdesk.gui.controller import LibraryController
    from clipdesk.gui.errors import install_excepthooks
    from clipdesk.gui.main_window import MainWindow
    from clipdesk.gui.settings import Settings

    QCoreApplication.setOrganizationName("clipdesk")
    QCoreApplication.setApplicationName("clipdesk")
    QSettings.setDefaultFormat(QSettings.IniFormat)
    settings = Settings()
    root = Path(args.library) if args.library else (Path(settings.last_library) if settings.last_library
                                                      else library_dir())
    log_path = library_dir(root) / "clipdesk.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    uninstall_hooks = install_excepthooks(log_path)  # also logs clipdesk's messages to the file
    controller = LibraryController(root, model=args.model or settings.model_spec or None,
                                   device=args.device if args.device != "auto" else settings.model_device,
                                   config=settings.core_config())
    settings.last_library = str(root)
    window = MainWindow(controller, settings)
    window.show()
    controller.load_model()  # after the window is up: loading takes seconds
    controller.resume_unfinished()
    for path in getattr(args, "open_paths", None) or []:
        window.add_paths([path])

    def close() -> None:
        window.close()
        controller.shutdown()
        uninstall_hooks()

    return window, close
