"""The ``clipdesk`` argument parser: global options, and every command group's subcommands.

Each command module registers its subcommands with ``add_parsers(sub,
common)`` and binds each to its function with ``set_defaults(func=...)``.
"""

from __future__ import annotations

import argparse

from clipdesk import __version__
from clipdesk.cli import captions, duplicates, labels, library, models, ocr, search, tune
from clipdesk.cli import eval as eval_commands
from clipdesk.cli.options import HELP, OptionTable, global_options, option, query_argv

TOP_OPTIONS = OptionTable([HELP, option("--version", action="version", version=f"clipdesk {__version__}"),
                           *global_options(after_command=False)])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clipdesk", description="Find photos in your folders by meaning, offline.")
    TOP_OPTIONS.add_to(p)
    p.set_defaults(func=None)  # no subcommand: the desktop app
    # The same options after the subcommand (``clipdesk index DIR --json``).
    common = OptionTable(global_options(after_command=True)).add_to(argparse.ArgumentParser(add_help=False))
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    library.add_index_parser(sub, common)
    search.add_parsers(sub)
    library.add_report_parsers(sub, common)
    models.add_parsers(sub, common)
    eval_commands.add_parsers(sub, common)
    labels.add_parsers(sub, common)
    captions.add_parsers(sub, common)
    tune.add_parsers(sub, common)
    ocr.add_parsers(sub, common)
    duplicates.add_parsers(sub, common)
    return p


def parse_args(argv: list[str], parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """``argv`` parsed, with query negatives let through (``search beach -people``)."""
    parser = parser or build_parser()
    return parser.parse_args(query_argv(list(argv), TOP_OPTIONS, search.QUERY_TABLES))
