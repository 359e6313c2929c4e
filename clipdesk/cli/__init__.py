"""``clipdesk`` command line: a thin layer over the core.

Without a subcommand it opens the desktop app when one can be shown. Each
command group is a module here (``library``, ``search``, ``models``,
``labels``, ``captions``, ``eval``) whose subcommands are bound to their
functions with ``set_defaults(func=...)``; ``support`` is what they share.
"""

from __future__ import annotations

import logging
import os
import sys

from clipdesk.cli.parser import build_parser, parse_args
from clipdesk.errors import ClipdeskError

__all__ = ["build_parser", "main", "parse_args"]


def main(argv: list[str] | None = None) -> int:
    # Paths with undecodable bytes must print, not crash the output.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger().setLevel(logging.CRITICAL)  # open_clip and the hub log noisily at WARNING
    if args.func is None:
        return _launch_app(args)
    try:
        return args.func(args)
    except ClipdeskError as exc:
        print(f"clipdesk: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("clipdesk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # ``clipdesk search ... | head``: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _launch_app(args) -> int:
    # The CLI's one import of the GUI (the layers contract in pyproject.toml names it). gui.app imports
    # PySide6 only once a display is found, so an install without the gui extra is told here, whatever
    # the display.
    import importlib.util

    try:
        if importlib.util.find_spec("PySide6") is None:
            raise ImportError("PySide6")
        from clipdesk.gui.app import run  # type: ignore[import-not-found]
    except ImportError:
        print(
            "clipdesk: the desktop app is not part of this build yet; the command line does everything:\n",
            file=sys.stderr,
        )
        build_parser().print_help(sys.stderr)
        return 0
    return run(args)
