"""Starting the desktop app: QApplication, error hooks, the main window."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
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
                                   precision=(getattr(args, "precision", "auto") if getattr(args, "precision", "auto") != "auto"
                                              else settings.model_precision),
                                   config=settings.core_config())
    settings.last_library = str(root)
    window = MainWindow(controller, settings)
    window.show()
    from clipdesk.gui.first_run import maybe_first_run

    def start_work() -> None:
        controller.resume_unfinished()
        for path in getattr(args, "open_paths", None) or []:
            window.add_paths([path])

    # Without weights, the first-run dialog decides the model first, then loads it and calls start_work.
    if args.model or not maybe_first_run(window, settings, controller, then=start_work):
        controller.load_model()  # after the window is up: loading takes seconds
        start_work()

    def close() -> None:
        window.close()
        controller.shutdown()
        uninstall_hooks()

    return window, close


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clipdesk-gui", description="The clipdesk desktop app.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="folders or photos to add and index (what 'Open with clipdesk' passes)")
    p.add_argument("--library", metavar="DIR", help="library folder (default: the last one used)")
    p.add_argument("--model", metavar="NAME", help="model preset, ARCH/TAG, hf-hub:ORG/REPO or ARCH:CHECKPOINT")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                   help="auto (fp16 on CUDA, fp32 elsewhere), fp32, fp16 or bf16")
    p.add_argument("--self-test", action="store_true",
                   help="start offscreen, index the bundled samples with the test model, search, exit 0 if all works")
    return p


def main(argv: list[str] | None = None) -> int:
    """``clipdesk-gui``: the app's own entry point (desktop files and the packaged app use it)."""
    args = build_parser().parse_args(argv)
    if args.self_test:
        return self_test()
    args.open_paths = [os.path.abspath(p) for p in args.paths]
    return run(args)


def self_test(timeout_s: float = 300.0) -> int:
    """Launch the real window offscreen on a throwaway library and settings; index and search the samples.

    Prints what was checked and how long the window took to appear; the exit
    code is 0 on success, 1 with the reason otherwise. The user's library,
    settings and model cache are never touched.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="clipdesk-selftest-") as tmp:
        os.environ["CLIPDESK_HOME"] = tmp
        os.environ["CLIPDESK_MODELS"] = os.path.join(tmp, "models")
        try:
            lines = _self_test_in(Path(tmp), timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            print(f"clipdesk self-test FAILED: {exc}", file=sys.stderr)
            return 1
    print("\n".join(["clipdesk self-test passed:", *(f"  {line}" for line in lines)]))
    return 0


def _self_test_in(tmp: Path, timeout_s: float) -> list[str]:
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from clipdesk.selftest import SelfTestFailed, check_library, samples_dir

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    args = argparse.Namespace(library=str(tmp / "library"), model="tiny-random", device="cpu",
                              open_paths=[str(samples_dir())])
    window, close = launch(args)
    app.processEvents()
    shown = _since_process_start()
    outcome: dict = {}
    loop = QEventLoop()

    def finish(key: str, value) -> None:
        outcome.setdefault(key, value)
        loop.quit()

    controller = window.controller
    controller.index_finished.connect(lambda report: finish("report", report))
    controller.index_failed.connect(lambda exc: finish("error", f"indexing failed: {exc}"))
    controller.model_state.connect(lambda state, msg: state == "missing" and finish("error", msg))
    QTimer.singleShot(int(timeout_s * 1000), lambda: finish("error", f"no result after {timeout_s:.0f} s"))
    try:
        loop.exec()
        if "error" in outcome:
            raise SelfTestFailed(outcome["error"])
        report = outcome["report"]
        if report.errors or report.embedded != len(list(samples_dir().iterdir())):
            raise SelfTestFailed(f"indexing the samples went wrong: {report}")
        from clipdesk.gui.lanes import Lane

        # Searches encode text: the inference lane's work, not this thread's.
        checks = controller.tasks.call(Lane.INFERENCE, lambda: check_library(controller.library, controller.engine))
    finally:
        close()
    return [f"window shown {shown:.2f} s after the process started ({window.windowTitle()!r})",
            f"indexed {report.embedded} sample photos", *checks]


def _since_process_start() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere since this module loaded)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _LOADED


_LOADED = time.perf_counter()


if __name__ == "__main__":
    sys.exit(main())
