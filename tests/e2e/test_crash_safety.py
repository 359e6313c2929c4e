"""``kill -9`` the indexer at random moments; the library must stay consistent.

Each batch of photos is committed with its embeddings in one transaction, so
whatever moment the process (and its decode workers) dies at, the next
``index`` finds a sound database and completes it: no duplicate photos, no
duplicate embeddings, every photo embedded exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from _cli import TINY_KEY, cli_args, cli_env, embedding_count, ok_json, query_db, run_cli

pytestmark = pytest.mark.slow

KILLS = 5
SEED = 20240611


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the indexer and its decode workers (one session, one process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # orphaned workers are gone once reaped
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)


def test_sigkill_at_random_moments_then_resume(tmp_path, shared_data):
    rng = random.Random(SEED)
    env = cli_env(tmp_path / "models")
    library = tmp_path / "lib"
    tree = shared_data / "imagenet_sample"
    files = {str(p) for p in tree.glob("*.JPEG")}  # (labels.json and wnids.json sit beside them)
    args = cli_args(library, "index", tree, "--batch-size", "4")

    killed_mid_run = 0
    for attempt in range(KILLS):
        before = max(embedding_count(library), 0)
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        # Kill once this run has committed a random number of photos, plus a random fraction
        # of a batch: measured in work, not seconds, so the kills land mid-run on any machine.
        target = before + rng.randint(1, 150)
        try:
            deadline = time.monotonic() + 120
            while embedding_count(library) < target and proc.poll() is None:
                assert time.monotonic() < deadline, "the indexer wrote too little in 120 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.05))
            if proc.poll() is None:
                killed_mid_run += 1
        finally:
            _kill_group(proc)
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
        assert "Traceback" not in stderr, f"attempt {attempt}: {stderr}"
        assert proc.returncode in (-signal.SIGKILL, 0), stderr
    assert killed_mid_run >= 3, "the kills must land while the indexer is working"
    assert 0 < embedding_count(library) < len(files)

    # The next run completes what the killed ones left.
    report = ok_json(run_cli(library, "index", tree, "--json", env=env, timeout=240))
    assert report["found"] == len(files) and report["errors"] == 0 and not report["cancelled"]

    assert query_db(library, "PRAGMA integrity_check") == [("ok",)]
    assert query_db(library, "PRAGMA foreign_key_check") == []
    assert query_db(library, "SELECT path FROM photos GROUP BY path HAVING count(*) > 1") == []
    assert query_db(library, "SELECT photo_id, model_key FROM embeddings "
                             "GROUP BY photo_id, model_key HAVING count(*) > 1") == []
    rows = query_db(library, "SELECT p.path, p.missing_since, "
                             "(SELECT count(*) FROM embeddings e WHERE e.photo_id = p.id AND e.model_key = ?), "
                             "(SELECT count(*) FROM embeddings e WHERE e.photo_id = p.id AND e.content_hash = p.content_hash) "
                             "FROM photos p", (TINY_KEY,))
    assert sorted(path for path, *_ in rows) == sorted(files)  # exactly one row per file
    assert all(missing is None for _, missing, _, _ in rows)
    assert all(n == 1 for _, _, n, _ in rows)  # exactly one embedding for the model
    assert all(fresh == 1 for _, _, _, fresh in rows)  # computed from the file as it is
    assert query_db(library, "SELECT count(*) FROM embeddings") == [(len(files),)]
    assert query_db(library, "SELECT count(*) FROM scan_errors") == [(0,)]

    status = ok_json(run_cli(library, "status", "--json", env=env))
    assert status["photos"] == status["embedded"] == len(files) and status["missing"] == 0
    result = ok_json(run_cli(library, "search", "dog", "-k", "5", "--json", env=env))
    assert len(result["results"]) == 5
    assert all(r["path"] in files for r in result["results"])


_DIE_DURING_MIGRATION = """
import os, sys
from alembic.operations import Operations

create_table, made = Operations.create_table, []

def create_then_maybe_die(self, *args, **kwargs):
    result = create_table(self, *args, **kwargs)
    made.append(args[0])
    if len(made) == 3:
        os._exit(137)  # as if killed: no rollback, no cleanup
    return result

Operations.create_table = create_then_maybe_die
from clipdesk.store.db import Library
Library(sys.argv[1])
"""


def test_killed_during_first_migration(tmp_path):
    """The first ``index`` creates the schema; dying half-way must not break the library for good."""
    library = tmp_path / "lib"
    died = subprocess.run([sys.executable, "-c", _DIE_DURING_MIGRATION, str(library)], capture_output=True,
                          text=True, timeout=120)
    assert died.returncode == 137, died.stderr
    proc = run_cli(library, "status", "--json", env=cli_env(tmp_path / "models"))
    assert proc.returncode == 0, proc.stderr
    assert ok_json(proc)["photos"] == 0
