"""Option tables, and the argv rewriting that lets query negatives through argparse.

argparse takes ``search beach -people`` for an unknown option ``-people``
(and ``-horse`` for ``-h orse``). The parsers of the query commands are
built from an ``OptionTable``, and ``query_argv`` reads the same table to
tell the command's own options from query words, so it needs nothing of
argparse's internals and cannot drift from the parser.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

# argparse actions that take no value.
_FLAG_ACTIONS = frozenset({"store_true", "store_false", "store_const", "append_const", "count", "help", "version"})
_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


@dataclass(frozen=True)
class Option:
    """One ``add_argument`` call: its flags and keyword arguments."""

    flags: tuple[str, ...]
    kwargs: dict = field(default_factory=dict, hash=False)
    builtin: bool = False  # argparse adds it by itself (-h/--help): in the table, never added

    @property
    def takes_value(self) -> bool:
        return self.kwargs.get("action") not in _FLAG_ACTIONS


def option(*flags: str, **kwargs) -> Option:
    return Option(tuple(flags), kwargs)


HELP = Option(("-h", "--help"), {"action": "help"}, builtin=True)


def global_options(after_command: bool) -> list[Option]:
    """Options accepted before the subcommand and (for convenience) after it.

    After it their default is SUPPRESS, so that a subcommand that does not
    repeat them keeps what was given before it.
    """
    def default(value):
        return {"default": argparse.SUPPRESS} if after_command else ({} if value is None else {"default": value})

    return [
        option("--library", metavar="DIR", **default(None),
               help="library folder (default: $CLIPDESK_HOME or the user data dir)"),
        option("--model", metavar="NAME", **default(None),
               help="model preset, ARCH/TAG, hf-hub:ORG/REPO or ARCH:CHECKPOINT"),
        option("--device", metavar="DEVICE", **default("auto"),
               help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps"),
        option("--precision", choices=("auto", "fp32", "fp16", "bf16", "int8"), **default("auto"),
               help="auto (fp16 on CUDA, fp32 elsewhere), fp32, fp16, bf16 or int8 (ONNX Runtime: "
               "CLIPDESK_ENGINE=onnx); each has its own embeddings"),
        option("--json", action="store_true", **default(None), help="machine-readable output"),
        option("-v", "--verbose", action="store_true", **default(None), help="log details to stderr"),
    ]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def iso_date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


class OptionTable:
    """The options of one parser, in the order they are added."""

    def __init__(self, options: Iterable[Option]) -> None:
        self.options = tuple(options)
        self._by_flag = {flag: opt for opt in self.options for flag in opt.flags}

    def add_to(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        for opt in self.options:
            if not opt.builtin:
                parser.add_argument(*opt.flags, **opt.kwargs)
        return parser

    def lookup(self, token: str) -> Option | None:
        """The option ``token`` names: exact, ``--opt=value``, ``-k5``, or a unique ``--prefix`` (as argparse allows)."""
        if token in self._by_flag:
            return self._by_flag[token]
        if token.startswith("--"):
            name = token.split("=", 1)[0]
            if name in self._by_flag:
                return self._by_flag[name]
            matches = {opt for flag, opt in self._by_flag.items() if flag.startswith("--") and flag.startswith(name)}
            return matches.pop() if len(matches) == 1 else None
        short = self._by_flag.get(token[:2])
        if short is not None and short.takes_value and token[2:].lstrip("=").lstrip("-").replace(".", "", 1).isdigit():
            return short  # -k5, -k=5
        return None


def query_argv(argv: list[str], top: OptionTable, commands: Mapping[str, OptionTable]) -> list[str]:
    """Rewrite ``argv`` so that argparse reads a query command's dash words as negatives.

    In the commands of ``commands`` (``search``, ``similar``), a dash word that
    is not one of the command's options becomes ``--not=word``; an option
    value that starts with a dash (``--text -people``) is joined to its
    option with ``=``; and query words may come before, between or after the
    options (they go after a ``--``). ``top``: the options that may come
    before the command. Anything else is returned as it is.
    """
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--" or not token.startswith("-") or token == "-":
            break
        opt = top.lookup(token)
        i += 2 if opt is not None and opt.takes_value and "=" not in token else 1
    if i >= len(argv) or argv[i] not in commands:
        return argv
    table = commands[argv[i]]
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
        opt = table.lookup(token)
        if opt is None:
            if token.startswith("--"):
                options.append(token)  # an unknown option: argparse says so
            else:
                options.append(f"--not={token[1:]}")
            continue
        attached = "=" in token or (not token.startswith("--") and len(token) > 2)  # --top=5, -k5
        if opt.takes_value and not attached and j < len(rest):
            options.append(f"{token}={rest[j]}")  # "--text -people": the value may start with a dash
            j += 1
        else:
            options.append(token)
    return head + options + (["--", *words] if words else [])
