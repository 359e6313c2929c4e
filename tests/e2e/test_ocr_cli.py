"""``clipdesk ocr run|show|status`` as a user runs them, then ``clipdesk search`` finds a word in a photo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import cli_env, ok_json, run_cli

from clipdesk.ocr.samples import SAMPLES, write_samples

NETLESS = Path(__file__).parent / "netless"


@pytest.fixture(scope="module")
def read_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ocr-e2e")
    photos = root / "photos"
    write_samples(photos, SAMPLES[:2], plain=1)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    # Offline, as a user's laptop may be: every process of these commands has the network blocked.
    env = cli_env(root / "models", CLIPDESK_BLOCK_NETWORK="1",
                  PYTHONPATH=os.pathsep.join(filter(None, [str(NETLESS), os.environ.get("PYTHONPATH")])))
    lib = root / "lib"
    ok_json(run_cli(lib, "index", str(photos), "--json", env=env))
    run = ok_json(run_cli(lib, "ocr", "run", "--json", env=env))
    return lib, env, photos, run


def test_the_commands_ran_without_a_network(read_tree):
    _lib, env, *_ = read_tree
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1', 9), 1)"],
                           env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "network blocked" in probe.stderr
    control = subprocess.run([sys.executable, "-c", "import socket; socket.getaddrinfo('localhost', 9)"],
                             env={k: v for k, v in env.items() if k != "CLIPDESK_BLOCK_NETWORK"},
                             capture_output=True, text=True)
    assert control.returncode == 0, control.stderr  # the block is the variable's doing


def test_ocr_run_reads_the_tree(read_tree):
    lib, env, photos, run = read_tree
    assert run["todo"] == run["photos"] == 3  # the broken file never became a photo: the scan recorded it
    assert (run["read"], run["with_text"], run["failed"], run["cancelled"]) == (3, 2, 0, False)
    assert "PP-OCRv6" in run["engine"]
    again = ok_json(run_cli(lib, "ocr", "run", "--json", env=env))
    assert (again["todo"], again["read"]) == (0, 0)  # incremental
    status = ok_json(run_cli(lib, "ocr", "status", "--json", env=env))
    assert (status["with_text"], status["without_text"], status["todo"]) == (2, 1, 0)


def test_ocr_show(read_tree):
    lib, env, photos, _ = read_tree
    shown = ok_json(run_cli(lib, "ocr", "show", str(photos / "hotel.jpg"), "--json", env=env))
    assert shown["status"] == "text"
    assert any("zimmer" in ln["text"].lower() for ln in shown["lines"])
    assert all(len(ln["box"]) == 4 and 0 < ln["confidence"] <= 1 for ln in shown["lines"])
    human = run_cli(lib, "ocr", "show", str(photos / "plain0.jpg"), env=env)
    assert human.returncode == 0 and "no text found" in human.stdout


def test_search_finds_the_word_and_says_why(read_tree):
    # One search here (each loads CLIP in a new process); tests/gui/test_ocr_menu.py searches "zimmer 214".
    lib, env, *_ = read_tree
    proc = run_cli(lib, "search", "invoice 7391", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)["results"]
    assert hits[0]["path"].endswith("invoice.jpg"), hits[:3]
    assert any(w["source"] == "ocr" and w["text"] for w in hits[0]["why"]), hits[0]
