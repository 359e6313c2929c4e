"""How the command line reads its arguments (in-process, no model: milliseconds)."""

from __future__ import annotations

import pytest

from clipdesk.cli import parse_args
from clipdesk.cli.search import query_text
from clipdesk.search import parse_text_query


def parse(*argv: str):
    return parse_args(list(argv))


def terms(*argv: str) -> list[tuple[str, float, bool]]:
    args = parse(*argv)
    words = args.text if args.command == "search" else [*args.words, args.text]
    return [(t.value, t.weight, t.negative) for t in parse_text_query(query_text(words, args.negatives), False)]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["search", "beach", "-people"], [("beach", 1.0, False), ("people", 1.0, True)]),
        (["search", "beach -people"], [("beach", 1.0, False), ("people", 1.0, True)]),
        # -horse is not -h orse, -kids is not -k ids
        (["search", "dog", "-horse", "-kids"], [("dog", 1.0, False), ("horse", 1.0, True), ("kids", 1.0, True)]),
        (["search", "red", "-k", "3", "car"], [("red car", 1.0, False)]),
        (["search", "beach", '-"red car"'], [("beach", 1.0, False), ("red car", 1.0, True)]),
        (["search", "beach", "-people:0.5"], [("beach", 1.0, False), ("people", 0.5, True)]),
        (["search", "beach", "--not", "red car"], [("beach", 1.0, False), ("red car", 1.0, True)]),
        (["search", "--", "-people", "dog"], [("dog", 1.0, False), ("people", 1.0, True)]),
        (["similar", "42", "--text", "-people"], [("people", 1.0, True)]),
        (["similar", "42", "at", "night", "-people"], [("at night", 1.0, False), ("people", 1.0, True)]),
    ],
)
def test_query_terms(argv, expected):
    assert terms(*argv) == expected


def test_options_anywhere():
    args = parse("--library", "L", "search", "red", "-k", "3", "car", "--json", "--folder", "/x", "-k5")
    assert (args.library, args.top, args.json, args.folder, args.text) == ("L", 5, True, "/x", ["red", "car"])
    args = parse("index", "/photos", "--json", "--model", "tiny-random", "--batch-size", "4")
    assert (args.json, args.model, args.batch_size, args.paths) == (True, "tiny-random", 4, ["/photos"])
    args = parse("--model", "tiny-random", "--json", "status")  # given before: not reset by the subcommand
    assert (args.model, args.json) == ("tiny-random", True)
    args = parse("similar", "42", "--fold", "/x")  # argparse's unique-prefix abbreviations still work
    assert (args.ref, args.folder) == ("42", "/x")


@pytest.mark.parametrize("argv", [["search", "dog", "-k", "0"], ["search", "dog", "--top", "-3"],
                                  ["index", "/x", "--batch-size", "0"], ["search", "dog", "--bogus"]])
def test_bad_numbers_and_options_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err
