"""``clipdesk duplicates`` as a user runs it: find on a generated tree, trash only when confirmed, undo."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
from pathlib import Path

import pytest
from _cli import cli_args, cli_env, ok_json, query_db, run_cli

from clipdesk.duplicates.synth import make_tree

pytestmark = pytest.mark.slow


def _at_terminal(argv: list[str], env: dict[str, str], answer: str) -> tuple[int, str]:
    """Run ``argv`` on a pseudo-terminal, answer its question, return (exit code, what it showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        os.execvpe(argv[0], argv, env)
    shown, answered = b"", False
    try:
        while select.select([fd], [], [], 120)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if not answered and b"[y/N]" in shown:
                os.write(fd, answer.encode() + b"\n")
                answered = True
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), shown.decode(errors="replace")


def _sha(paths) -> dict[str, str]:
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def test_find_trash_with_confirmation_and_undo(tmp_path, coco_images):
    tree = make_tree(coco_images[:7], tmp_path / "photos", negatives=3)
    before = _sha(tree.truth)
    library = tmp_path / "lib"
    env = cli_env(tmp_path / "models", HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "xdg"))
    ok_json(run_cli(library, "index", tree.root, "--json", "--workers", "0", env=env))

    found = ok_json(run_cli(library, "duplicates", "--json", env=env))
    assert found["used_embeddings"] is False  # the test-only random model: hashes and times only
    groups = {frozenset(p["path"] for p in g["photos"]): g for g in found["groups"]}
    expected = {frozenset(paths): name for name, paths in tree.groups().items()}
    assert set(groups) == set(expected)
    for paths, g in groups.items():
        assert g["tier"] == tree.tiers[expected[paths]]
        assert g["keeper"] in paths and g["keeper"] == g["photos"][0]["path"] and g["keeper_reason"]
        assert all(p["evidence"] for p in g["photos"])
    near = ok_json(run_cli(library, "duplicates", "--tier", "near", "--json", env=env))
    assert [g["tier"] for g in near["groups"]] == ["near"]
    number = near["groups"][0]["number"]

    # No --yes and no terminal to ask on: nothing moves, and it says so.
    refused = run_cli(library, "duplicates", "trash", "--json", env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert _sha(tree.truth) == before
    # Unasked, a burst's shots are never offered: only the extras of exact and near groups.
    offered = set(json.loads(refused.stdout)["would_move"])
    extras = {p["path"] for g in found["groups"] for p in g["photos"][1:]}
    bursts = {p["path"] for g in found["groups"] if g["tier"] == "similar" for p in g["photos"]}
    assert bursts and offered == extras - bursts
    # At a terminal it asks; anything but yes moves nothing.
    code, shown = _at_terminal(cli_args(library, "duplicates", "trash", "--tier", "near"), env, "n")
    assert code == 1 and "[y/N]" in shown and "nothing moved" in shown
    assert _sha(tree.truth) == before

    moved = ok_json(run_cli(library, "duplicates", "trash", "--tier", "near", "--groups", str(number), "--yes",
                            "--json", env=env))
    assert len(moved["moved"]) == 9 and not any(Path(p).exists() for p in moved["moved"])
    assert len(list((tmp_path / "xdg" / "Trash" / "info").glob("*.trashinfo"))) == 9
    assert query_db(library, "SELECT count(*) FROM photos WHERE missing_since IS NOT NULL") == [(9,)]

    back = ok_json(run_cli(library, "duplicates", "undo", moved["batch"], "--json", env=env))
    assert sorted(back["restored"]) == sorted(moved["moved"])
    assert _sha(tree.truth) == before
    assert query_db(library, "SELECT count(*) FROM photos WHERE missing_since IS NOT NULL") == [(0,)]
