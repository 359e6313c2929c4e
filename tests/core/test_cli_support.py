"""``clipdesk.cli.support`` and the option tables the query commands are built from (in-process, no model)."""

from __future__ import annotations

import ast
import io
import json
import signal
from argparse import Namespace
from pathlib import Path

import pytest
from _vecdb import add_photos

from clipdesk.cli import support
from clipdesk.cli.options import HELP, OptionTable, option, query_argv
from clipdesk.engine.registry import embedding_key, resolve
from clipdesk.errors import NotIndexed, QueryError
from clipdesk.jobs import CancelToken, Progress

CLI = Path(support.__file__).parent
TINY = resolve("tiny-random")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_silent_off_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with support.ProgressBar() as bar:
        bar(Progress("indexing", 1, 2))
        bar.count(3, 4)
    assert bar._bar is None and not bar.enabled


def test_progress_bar_shows_one_bar_per_phase_and_counts(monkeypatch):
    err = _Tty()
    monkeypatch.setattr("sys.stderr", err)
    only = support.ProgressBar(phase="indexing")
    only(Progress("scanning", 5, 10))  # another phase: not shown
    assert only._bar is None
    only(Progress("indexing", 2, 4, errors=1))
    assert (only._bar.n, only._bar.total, only._bar.desc) == (2, 4, "indexing")
    only.close()
    assert "errors=1" in err.getvalue()

    every = support.ProgressBar(unit="it")
    every(Progress("encoding", 3, 3))
    first = every._bar
    every(Progress("training", 1, 5))  # a new phase closes the old bar and starts its own
    assert first.disable and first.n == 3  # closed at its last count
    assert (every._bar.desc, every._bar.n, every._bar.total) == ("training", 1, 5)
    every.close()
    every.close()  # twice is fine

    with support.ProgressBar(desc="model", unit="B", unit_scale=True) as download:
        download.count(10, 0)  # total unknown
        assert download._bar.total is None
        download.count(50, 100)  # learnt later
        assert (download._bar.n, download._bar.total) == (50, 100)
    assert download._bar is None


def test_json_or_human_lines(capsys):
    support.emit(Namespace(json=True), {"a": Path("/x")}, ["human"])
    assert json.loads(capsys.readouterr().out) == {"a": "/x"}
    support.emit(Namespace(json=False), {"a": 1}, ["one", "two"])
    assert capsys.readouterr().out == "one\ntwo\n"
    support.say("stopped.")
    assert capsys.readouterr().err == "clipdesk: stopped.\n"


def test_first_ctrl_c_cancels_the_second_interrupts(capsys):
    before = signal.getsignal(signal.SIGINT)
    with support.sigint_cancels(CancelToken()) as token:
        signal.raise_signal(signal.SIGINT)
        assert token.cancelled
        assert "stopping after the current batch" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_photo_lookup_by_id_or_path(library):
    ids = add_photos(library, TINY.key, [{"path": "/p/a.jpg", "vector": [1, 0]}, {"path": "/p/b.jpg", "vector": [0, 1]}])
    assert support.photo_id(library, str(ids[1])) == ids[1]
    assert support.photo_id(library, "/p/a.jpg") == ids[0]
    with pytest.raises(QueryError, match="No photo '/p/zzz.jpg' in this library"):
        support.photo_id(library, "/p/zzz.jpg")


class _Engine:
    def __init__(self, precision: str) -> None:
        self.spec, self.precision, self.key = TINY, precision, embedding_key(TINY, precision)


def test_not_indexed_says_what_to_run(library):
    args = Namespace(model="tiny-random")
    with pytest.raises(NotIndexed, match="has no photos yet. Run: clipdesk index FOLDER"):
        support.require_indexed(args, library, _Engine("fp32"))
    add_photos(library, embedding_key(TINY, "fp16"), [{"path": "/p/a.jpg", "vector": [1, 0]}])
    support.require_indexed(args, library, _Engine("fp16"))  # indexed: nothing raised
    with pytest.raises(NotIndexed) as exc:  # the same model at another precision: the flag that finds them
        support.require_indexed(args, library, _Engine("fp32"))
    assert "indexed at fp16" in str(exc.value) and "Add --precision fp16" in str(exc.value)
    assert "clipdesk --model tiny-random --precision fp32 index FOLDER" in str(exc.value)
    assert NotIndexed.exit_code == 4


def test_query_argv_reads_the_table_it_is_given():
    table = OptionTable([HELP, option("-x", "--extra"), option("--flag", action="store_true")])
    top = OptionTable([HELP, option("--library")])
    rewrite = query_argv(["--library", "L", "find", "a", "-b", "-x", "-c", "--fl", "d", "-x5"], top, {"find": table})
    assert rewrite == ["--library", "L", "find", "--not=b", "-x=-c", "--fl", "-x5", "--", "a", "d"]
    assert query_argv(["other", "-b"], top, {"find": table}) == ["other", "-b"]  # not a query command: as given
    assert query_argv(["find", "--ex=1", "--bogus"], top, {"find": table}) == ["find", "--ex=1", "--bogus"]


def test_command_modules_import_no_private_names():
    offenders = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clipdesk"):
                offenders += [f"{path.name}: {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []
