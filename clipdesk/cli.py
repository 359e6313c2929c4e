"""``clipdesk`` command line: a thin layer over the core.

Without a subcommand it opens the desktop app when one can be shown.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from datetime import datetime

from clipdesk import __version__
from clipdesk.captions import commands as caption_commands
from clipdesk.errors import ClipdeskError
from clipdesk.labels import commands as label_commands


def _global_options(p: argparse.ArgumentParser, default) -> None:
    """Options accepted before the subcommand and (for convenience) after it."""
    d = {} if default is None else {"default": default}
    p.add_argument("--library", metavar="DIR", **d,
                   help="library folder (default: $CLIPDESK_HOME or the user data dir)")
    p.add_argument("--model", metavar="NAME", **d, help="model preset, ARCH/TAG, hf-hub:ORG/REPO or ARCH:CHECKPOINT")
    p.add_argument("--device", metavar="DEVICE", **({"default": "auto"} if default is None else d),
                   help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"),
                   **({"default": "auto"} if default is None else d),
                   help="auto (fp16 on CUDA, fp32 elsewhere), fp32, fp16 or bf16; each has its own embeddings")
    p.add_argument("--json", action="store_true", **d, help="machine-readable output")
    p.add_argument("-v", "--verbose", action="store_true", **d, help="log details to stderr")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clipdesk", description="Find photos in your folders by meaning, offline.")
    p.add_argument("--version", action="version", version=f"clipdesk {__version__}")
    _global_options(p, None)
    # The same options after the subcommand (``clipdesk index DIR --json``); SUPPRESS keeps
    # a subcommand that does not repeat them from resetting what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    ix = sub.add_parser("index", parents=[common], help="add folders (or files) and index new and changed photos")
    ix.add_argument("paths", nargs="+", metavar="PATH")
    ix.add_argument("--batch-size", type=_positive_int, default=32)
    ix.add_argument("--workers", type=int, default=-1, help="decode processes (default: CPU count - 1, at least 2; 0: inline)")

    se = sub.add_parser("search", parents=[common], help="search by text (and optionally images)")
    se.add_argument("text", nargs="*", help="query: words, -negative, +\"phrase\", term:weight")
    se.add_argument("--image", action="append", default=[], metavar="FILE_OR_ID", help="add an image to the query")
    _result_options(se)
    label_commands.add_search_option(se)

    si = sub.add_parser("similar", parents=[common], help="photos similar to a file or a library photo id")
    si.add_argument("ref", metavar="FILE_OR_ID")
    si.add_argument("words", nargs="*", metavar="TEXT", help="text to combine with the image (same as --text)")
    si.add_argument("--text", default="", help="text to combine with the image, e.g. 'at night' or '-people'")
    _result_options(si)

    sub.add_parser("status", parents=[common], help="library counts, model and index state")
    er = sub.add_parser("errors", parents=[common], help="files that could not be indexed, with the reason")
    er.add_argument("--limit", type=int, default=0, help="show at most N (default: all)")
    from clipdesk.engine.onnx_cli import add_models_actions  # models export-onnx

    add_models_actions(sub.add_parser("models", parents=[common], help="list model presets and whether their weights are present"))
    from clipdesk.labels.eval_cli import add_eval_parser  # clipdesk eval labels

    add_eval_parser(sub, common)
    label_commands.add_parser(sub, common)
    caption_commands.add_parser(sub, common)
    return p


def _result_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", "--top", type=_positive_int, default=20, help="number of results (default 20)")
    p.add_argument("--folder", help="only photos under this folder")
    p.add_argument("--from", dest="date_from", type=_date, help="taken on or after YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", type=_date, help="taken on or before YYYY-MM-DD")
    p.add_argument("--type", dest="types", default="", help="file types, e.g. jpeg,png,heic")
    p.add_argument("--min-score", type=float, help="fixed similarity cut-off instead of the automatic one")
    p.add_argument("--all", action="store_true", help="list the top results even when they are not good matches")
    p.add_argument("--not", dest="negatives", action="append", default=[], metavar="TERM",
                   help="leave out photos like TERM (the same as -TERM in the query)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


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
    parser = build_parser()
    args = parser.parse_args(_query_argv(parser, list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger().setLevel(logging.CRITICAL)  # open_clip and the hub log noisily at WARNING
    if args.command is None:
        return _launch_app(args)
    try:
        from clipdesk import commands

        return getattr(commands, f"cmd_{args.command}")(args)
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


QUERY_COMMANDS = ("search", "similar")


def _query_argv(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Let query negatives through argparse: ``search beach -people``.

    argparse takes ``-people`` for an option (and ``-horse`` for ``-h orse``).
    In ``search`` and ``similar``, a dash word that is not one of the
    command's options becomes ``--not=people``; an option value that starts
    with a dash (``--text -people``) is joined to its option with ``=``;
    and query words may come before, between or after the options.
    """
    top = _option_actions(parser)
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--" or not token.startswith("-") or token == "-":
            break
        action = _lookup(top, token)
        i += 2 if action is not None and action.nargs != 0 and "=" not in token else 1
    if i >= len(argv) or argv[i] not in QUERY_COMMANDS:
        return argv
    sub = _option_actions(_subparsers(parser)[argv[i]])
    head, rest = argv[: i + 1], argv[i + 1 :]
    options: list[str] = []
    words: list[str] = []
    j = 0
    while j < len(rest):
        token = rest[j]
        j += 1
        if token == "--":
            words.extend(rest[j:])
            break
        if len(token) < 2 or not token.startswith("-") or _NUMBER.match(token):
            words.append(token)
            continue
        action = _lookup(sub, token)
        if action is None:
            if token.startswith("--"):
                options.append(token)  # an unknown option: argparse says so
            else:
                options.append(f"--not={token[1:]}")
            continue
        attached = "=" in token or (not token.startswith("--") and len(token) > 2)  # --top=5, -k5
        if action.nargs != 0 and not attached and j < len(rest):
            options.append(f"{token}={rest[j]}")  # "--text -people": the value may start with a dash
            j += 1
        else:
            options.append(token)
    return head + options + (["--", *words] if words else [])


_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public accessor
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def _option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return dict(parser._option_string_actions)  # noqa: SLF001


def _lookup(actions: dict[str, argparse.Action], token: str) -> argparse.Action | None:
    """The action ``token`` names: exact, ``--opt=value``, ``-k5``, or a unique ``--prefix``."""
    if token in actions:
        return actions[token]
    if token.startswith("--"):
        name = token.split("=", 1)[0]
        if name in actions:
            return actions[name]
        matches = {a for opt, a in actions.items() if opt.startswith("--") and opt.startswith(name)}
        return matches.pop() if len(matches) == 1 else None
    short = actions.get(token[:2])
    if short is not None and short.nargs != 0 and token[2:].lstrip("=").lstrip("-").replace(".", "", 1).isdigit():
        return short  # -k5, -k=5
    return None


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
