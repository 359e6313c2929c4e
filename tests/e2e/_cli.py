"""Running the ``clipdesk`` command as a subprocess, and reading its database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

TINY = "tiny-random"
TINY_KEY = "open_clip:clipdesk-tiny-random:random-seed0"
CLIPDESK = [sys.executable, "-m", "clipdesk.cli"]


def cli_env(models: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", CLIPDESK_MODELS=str(models), PYTHONUNBUFFERED="1", **extra)
    env.pop("CLIPDESK_HOME", None)  # every command names its --library
    return env


def cli_args(library: Path, *args: str, model: str | None = TINY) -> list[str]:
    return [*CLIPDESK, *(["--model", model] if model else []), "--library", str(library), *map(str, args)]


def run_cli(library: Path, *args: str, env: dict[str, str], model: str | None = TINY,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_args(library, *args, model=model), env=env, capture_output=True, text=True,
                          timeout=timeout)


def ok_json(proc: subprocess.CompletedProcess[str]) -> dict:
    """The JSON of a command that must have succeeded."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def assert_one_line_failure(proc: subprocess.CompletedProcess[str]) -> str:
    """A failed command: non-zero exit, one clean line on stderr, nothing on stdout."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("clipdesk"), lines[0]
    return lines[0]


def query_db(library: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the library database read-only (safe while an indexer writes to it)."""
    db = library / "clipdesk.db"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return conn.execute(sql, params).fetchall()


def embedding_count(library: Path, model_key: str = TINY_KEY) -> int:
    """Embeddings written so far, or -1 while there is no readable database yet."""
    if not (library / "clipdesk.db").exists():
        return -1
    try:
        return query_db(library, "SELECT count(*) FROM embeddings WHERE model_key = ?", (model_key,))[0][0]
    except sqlite3.Error:  # not migrated yet, or busy
        return -1
