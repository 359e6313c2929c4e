"""``clipdesk label run|list`` and ``search --label`` as a user runs them.

Mechanics only: the test-only random model's labels mean nothing, so the
run is told to let every label fire (``--margin -2 --z -1000``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _cli import cli_env, ok_json, query_db, run_cli

pytestmark = pytest.mark.slow

USER_LABELS = """labels:
  - name: zebra crossing
    descriptors: [white stripes on a road, people walking across a street]
"""


@pytest.fixture
def indexed(tmp_path, coco_images) -> tuple[Path, dict]:
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in coco_images[:6]:
        shutil.copy(src, photos / src.name)
    library = tmp_path / "lib"
    env = cli_env(tmp_path / "models")
    ok_json(run_cli(library, "index", photos, "--json", "--workers", "0", env=env))
    (library / "labels.yaml").write_text(USER_LABELS)
    return library, env


def test_label_run_list_and_search(indexed):
    library, env = indexed
    report = ok_json(run_cli(library, "label", "run", "--json", "--margin", "-2", "--z", "-1000", env=env))
    assert (report["photos"], report["labelled"], report["cancelled"]) == (6, 6, False)
    assert report["with_labels"] == 6 and report["proposed"] == 6 * report["labels"]
    rows = query_db(library, "SELECT DISTINCT source, status FROM labels")
    assert rows == [("auto", "proposed")]

    again = ok_json(run_cli(library, "label", "run", "--json", "--margin", "-2", "--z", "-1000", env=env))
    assert (again["todo"], again["proposed"]) == (0, 0)  # incremental: nothing left to do

    listed = ok_json(run_cli(library, "label", "list", "--json", env=env))
    counts = {e["label"]: e["photos"] for e in listed["labels"]}
    assert counts["zebra crossing"] == 6
    assert listed["vocabulary"] == report["labels"]

    # The user rejects the label on one photo: search --label leaves that photo out.
    rejected = query_db(library, "SELECT photo_id FROM labels WHERE label = 'zebra crossing' ORDER BY photo_id")[0][0]
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(library / "clipdesk.db")) as conn, conn:
        conn.execute("UPDATE labels SET status = 'rejected' WHERE photo_id = ? AND label = 'zebra crossing'",
                     (rejected,))
    alone = ok_json(run_cli(library, "search", "--label", "zebra crossing", "--json", env=env))
    assert alone["count"] == 5 and rejected not in {r["id"] for r in alone["results"]}
    combined = ok_json(run_cli(library, "search", "street", "--label", "zebra crossing", "--json", env=env))
    ids = {r["id"] for r in combined["results"]}
    assert len(ids) == 5 and rejected not in ids
    none = ok_json(run_cli(library, "search", "--label", "no such label", "--json", env=env))
    assert none["count"] == 0


def test_label_run_without_index_fails_cleanly(tmp_path):
    proc = run_cli(tmp_path / "empty", "label", "run", env=cli_env(tmp_path / "models"))
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "clipdesk index" in proc.stderr


def test_accept_reject_and_xmp_export(indexed, tmp_path):
    import hashlib
    import xml.etree.ElementTree as ET

    library, env = indexed
    photos = sorted((tmp_path / "photos").glob("*.jpg"))
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in photos}
    first = query_db(library, "SELECT id, path FROM photos ORDER BY id")[0]
    assert ok_json(run_cli(library, "label", "accept", str(first[0]), "Puppy", "--json", env=env))["label"] == "dog"
    assert ok_json(run_cli(library, "label", "reject", first[1], "cat", "--json", env=env))["status"] == "rejected"
    # A later auto run keeps the user's decisions.
    ok_json(run_cli(library, "label", "run", "--json", "--margin", "-2", "--z", "-1000", env=env))
    statuses = dict(query_db(library, "SELECT label, status FROM labels WHERE photo_id = ? AND label IN ('dog', 'cat')",
                             (first[0],)))
    assert statuses == {"dog": "accepted", "cat": "rejected"}
    queue = ok_json(run_cli(library, "label", "review", "-k", "5", "--label", "kitten", "--json", env=env))["items"]
    assert len(queue) == 5 and {it["label"] for it in queue} == {"cat"}
    assert first[0] not in {it["id"] for it in queue}  # decided: never asked again

    out = ok_json(run_cli(library, "label", "export-xmp", str(first[0]), "--json", env=env))
    (sidecar,) = out["written"]
    assert sidecar == first[1] + ".xmp"
    text = Path(sidecar).read_text()
    root = ET.fromstring(text)
    subjects = [li.text for li in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li")]
    assert "dog" in subjects and "cat" not in subjects and "animal|dog" in subjects
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in photos} == before  # photos untouched
    assert len(list((tmp_path / "photos").glob("*.xmp"))) == 1  # only what was asked
