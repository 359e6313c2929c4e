"""``clipdesk`` command line: a thin layer over the core.

Without a subcommand it opens the desktop app when one can be shown.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from clipdesk import __version__
from clipdesk.errors import ClipdeskError, NotIndexed, QueryError
from clipdesk.jobs import CancelToken, Progress

MODEL_META = "model_spec"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clipdesk", description="Find photos in your folders by meaning, offline.")
    p.add_argument("--version", action="version", version=f"clipdesk {__version__}")
    p.add_argument("--library", metavar="DIR", help="library folder (default: $CLIPDESK_HOME or the user data dir)")
    p.add_argument("--model", metavar="NAME", help="model preset, ARCH/TAG, hf-hub:ORG/REPO or ARCH:CHECKPOINT")
    p.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    ix = sub.add_parser("index", help="add folders (or files) and index new and changed photos")
    ix.add_argument("paths", nargs="+", metavar="PATH")
    ix.add_argument("--batch-size", type=int, default=32)
    ix.add_argument("--workers", type=int, default=-1, help="decode processes (default: CPU count - 1; 0: inline)")

    se = sub.add_parser("search", help="search by text (and optionally images)")
    se.add_argument("text", nargs="*", help="query: words, -negative, +\"phrase\", term:weight")
    se.add_argument("--image", action="append", default=[], metavar="FILE_OR_ID", help="add an image to the query")
    _result_options(se)

    si = sub.add_parser("similar", help="photos similar to a file or a library photo id")
    si.add_argument("ref", metavar="FILE_OR_ID")
    si.add_argument("--text", default="", help="text to combine with the image, e.g. 'at night' or '-people'")
    _result_options(si)

    sub.add_parser("status", help="library counts, model and index state")
    er = sub.add_parser("errors", help="files that could not be indexed, with the reason")
    er.add_argument("--limit", type=int, default=0, help="show at most N (default: all)")
    sub.add_parser("models", help="list model presets and whether their weights are present")
    return p


def _result_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", "--top", type=int, default=20, help="number of results (default 20)")
    p.add_argument("--folder", help="only photos under this folder")
    p.add_argument("--from", dest="date_from", type=_date, help="taken on or after YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", type=_date, help="taken on or before YYYY-MM-DD")
    p.add_argument("--type", dest="types", default="", help="file types, e.g. jpeg,png,heic")
    p.add_argument("--min-score", type=float, help="fixed similarity cut-off instead of the automatic one")
    p.add_argument("--all", action="store_true", help="list the top results even when they are not good matches")


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def main(argv: list[str] | None = None) -> int:
    # Paths with undecodable bytes must print, not crash the output.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger().setLevel(logging.CRITICAL)  # open_clip and the hub log noisily at WARNING
    if args.command is None:
        return _launch_app(args)
    from clipdesk import commands

    try:
        return getattr(commands, f"cmd_{args.command}")(args)
    except ClipdeskError as exc:
        print(f"clipdesk: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("clipdesk: interrupted", file=sys.stderr)
        return 130


def _launch_app(args) -> int:
    try:
        from clipdesk.gui.app import run  # type: ignore[import-not-found]
    except ImportError:
        print(
            "clipdesk: the desktop app is not part of this build yet; the command line does everything:\n",
            file=sys.stderr,
        )
        build_parser().print_help(sys.stderr)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
