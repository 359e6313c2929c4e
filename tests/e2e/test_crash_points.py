"""Every writer dies at a named crash point inside its transaction; the next run finishes exactly.

``CLIPDESK_CRASH_AT=POINT:N`` (clipdesk/crashpoints.py) ends the process with
``os._exit(86)`` the N-th time it reaches POINT, as ``kill -9`` would. Each
test crashes one command at one point, checks from the database that the
crash came where it was meant to (uncommitted rows rolled back, committed
ones kept), runs the same command again without the variable, and counts
the rows: every photo done exactly once, nothing lost, nothing extra.

Six photos in batches of 2: the crash at the 2nd batch leaves one batch
committed ("written" points: the 2nd batch's rows are rolled back) or two
("committed" points).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import TINY_KEY, cli_args, cli_env, ok_json, query_db, run_cli

from clipdesk.crashpoints import ENV, EXIT_CODE, MARKER, POINTS, parse
from clipdesk.labels.feedback import set_feedback
from clipdesk.store.db import Library

pytestmark = pytest.mark.slow

BATCH = 2
PHOTOS = 6
AT = 2  # crash in the 2nd batch of 3
LABELS = ("dog", "cat", "boat")
TINY_COCA = ["--backend", "coca", "--caption-model", "tiny-coca", "--max-len", "6", "--candidates", "2"]
# --margin=-2 makes every label fire on every photo (a cosine difference is never below -2), so the
# label counts are known exactly; with under 30 photos there is no library cut.
LABEL_RUN = ["label", "run", "--batch-size", str(BATCH), "--margin=-2", "--json"]
INDEX_POINTS = ["index.batch-written", "index.batch-committed"]
LABEL_POINTS = ["labels.batch-written", "labels.batch-committed"]
CAPTION_POINTS = ["captions.batch-written", "captions.batch-committed"]
FOLDER_POINTS = ["folder-removal.written", "folder-removal.committed"]
FEEDBACK_POINTS = ["feedback.written", "feedback.committed"]
REMOVE_FOLDER = """
import sys
from clipdesk.store.db import Library
from clipdesk.store.queries import remove_folder
lib = Library(sys.argv[1])
print(remove_folder(lib, sys.argv[2]))
lib.close()
"""


def committed(point: str) -> int:
    """Photos whose batch had committed when the crash at the ``AT``-th batch came."""
    return BATCH * (AT if point.endswith("committed") else AT - 1)


@pytest.fixture(scope="module")
def world(tmp_path_factory, coco_images):
    """Photos in two folders, a three-label vocabulary, and an indexed library to copy."""
    tmp = tmp_path_factory.mktemp("crash-points")
    for i, src in enumerate(coco_images[:PHOTOS]):
        folder = tmp / "photos" / ("a" if i < PHOTOS // 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, folder / src.name)
    labels = tmp / "resources" / "labels"
    labels.mkdir(parents=True)
    (labels / "test.yaml").write_text("labels:\n" + "".join(
        f"  - name: {name}\n    descriptors: [a {name} in the photo, the shape of a {name}]\n" for name in LABELS))
    env = cli_env(tmp / "models", CLIPDESK_RESOURCES=str(tmp / "resources"))
    env.pop(ENV, None)
    roots = [tmp / "photos" / "a", tmp / "photos" / "b"]
    template = tmp / "indexed"
    report = ok_json(run_cli(template, *index_args(roots), env=env))
    assert report["new"] == PHOTOS
    return {"env": env, "roots": roots, "template": template}


def index_args(roots: list[Path]) -> list[str]:
    return ["index", *map(str, roots), "--batch-size", str(BATCH), "--workers", "0", "--json"]


def indexed_copy(world, tmp_path) -> Path:
    library = tmp_path / "lib"
    shutil.copytree(world["template"], library)
    return library


def crash(argv: list[str], env: dict[str, str], point: str, at: int) -> None:
    """Run ``argv`` with the crash point armed; it must die there, and only there."""
    proc = subprocess.run(argv, env={**env, ENV: f"{point}:{at}"}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == EXIT_CODE, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert proc.stderr.splitlines()[-1] == f"{MARKER} {point}:{at}", proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def crash_cli(library: Path, args: list[str], env: dict[str, str], point: str, at: int = AT) -> None:
    crash(cli_args(library, *args), env, point, at)


def assert_sound(library: Path) -> None:
    assert query_db(library, "PRAGMA integrity_check") == [("ok",)]
    assert query_db(library, "PRAGMA foreign_key_check") == []


def count(library: Path, sql: str, params: tuple = ()) -> int:
    return query_db(library, sql, params)[0][0]


# -- the helper itself -------------------------------------------------------------------------

def test_parse_reads_a_point_and_its_count():
    assert parse(None) is None and parse("") is None
    assert parse("index.batch-written") == ("index.batch-written", 1)
    assert parse("labels.batch-committed:3") == ("labels.batch-committed", 3)
    for bad in ("index.batch-writen:1", "index.batch-written:0", "index.batch-written:x", "feedback.written:"):
        with pytest.raises(ValueError, match=ENV):
            parse(bad)


_THREE_ARRIVALS = """
from clipdesk.crashpoints import crash_point
for i in range(1, 4):
    crash_point("feedback.written")
    crash_point("feedback.committed")  # another point: never counted for the armed one
    print(i, flush=True)
"""


def test_crash_point_exits_at_the_nth_arrival_without_cleanup(tmp_path):
    argv = [sys.executable, "-c", _THREE_ARRIVALS]
    unarmed = {k: v for k, v in os.environ.items() if k != ENV}
    plain = subprocess.run(argv, env=unarmed, capture_output=True, text=True, timeout=60)
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "1\n2\n3\n", "")  # control: unarmed, no effect
    armed = subprocess.run(argv, env={**unarmed, ENV: "feedback.written:2"}, capture_output=True, text=True,
                           timeout=60)
    assert armed.returncode == EXIT_CODE
    assert armed.stdout == "1\n"  # the 2nd arrival, before the 2nd print
    assert armed.stderr == f"{MARKER} feedback.written:2\n"


def test_every_named_point_is_crashed_here():
    tested = INDEX_POINTS + LABEL_POINTS + CAPTION_POINTS + FOLDER_POINTS + FEEDBACK_POINTS
    assert sorted(tested) == sorted(POINTS)


# -- the writers -----------------------------------------------------------------------------

@pytest.mark.parametrize("point", INDEX_POINTS)
def test_index_resumes_after_a_crash(world, tmp_path, point):
    library, env = tmp_path / "lib", world["env"]
    crash_cli(library, index_args(world["roots"]), env, point)
    done = committed(point)
    assert count(library, "SELECT count(*) FROM photos") == done
    assert count(library, "SELECT count(*) FROM embeddings") == done
    assert count(library, "SELECT count(*) FROM folders WHERE scan_complete") == 0  # the app resumes them

    report = ok_json(run_cli(library, *index_args(world["roots"]), env=env))
    assert (report["new"], report["unchanged"], report["embedded"]) == (PHOTOS - done, done, PHOTOS - done)
    assert (report["errors"], report["moved"], report["missing"]) == (0, 0, 0)
    files = sorted(str(p) for root in world["roots"] for p in root.glob("*.jpg"))
    assert sorted(p for (p,) in query_db(library, "SELECT path FROM photos")) == files
    assert query_db(library, "SELECT count(*), count(DISTINCT e.photo_id) FROM embeddings e "
                             "JOIN photos p ON p.id = e.photo_id AND p.content_hash = e.content_hash "
                             "WHERE e.model_key = ?", (TINY_KEY,)) == [(PHOTOS, PHOTOS)]
    assert count(library, "SELECT count(*) FROM embeddings") == PHOTOS
    assert count(library, "SELECT count(*) FROM folders WHERE scan_complete") == 2
    assert_sound(library)


@pytest.mark.parametrize("point", LABEL_POINTS)
def test_label_run_resumes_after_a_crash(world, tmp_path, point):
    library, env = indexed_copy(world, tmp_path), world["env"]
    crash_cli(library, LABEL_RUN, env, point)
    done = committed(point)
    assert query_db(library, "SELECT count(*), count(DISTINCT photo_id) FROM labels") == [(done * len(LABELS), done)]

    report = ok_json(run_cli(library, *LABEL_RUN, env=env))
    assert (report["todo"], report["labelled"], report["with_labels"]) == (PHOTOS - done,) * 3  # not one redone
    assert report["proposed"] == (PHOTOS - done) * len(LABELS)
    rows = query_db(library, "SELECT photo_id, label, source, status FROM labels")
    ids = [i for (i,) in query_db(library, "SELECT id FROM photos")]
    assert sorted(rows) == sorted((i, name, "auto", "proposed") for i in ids for name in LABELS)
    assert_sound(library)


@pytest.mark.parametrize("point", CAPTION_POINTS)
def test_captions_run_resumes_after_a_crash(world, tmp_path, point):
    library, env = indexed_copy(world, tmp_path), world["env"]
    args = ["captions", "run", *TINY_COCA, "--batch-size", str(BATCH), "--json"]
    crash_cli(library, args, env, point)
    done = committed(point)
    assert count(library, "SELECT count(*) FROM captions") == done

    report = ok_json(run_cli(library, *args, env=env))
    assert (report["todo"], report["captioned"], report["failed"]) == (PHOTOS - done, PHOTOS - done, 0)
    rows = query_db(library, "SELECT photo_id, source, model_key FROM captions")
    ids = [i for (i,) in query_db(library, "SELECT id FROM photos")]
    assert sorted(rows) == sorted((i, "auto", report["caption_model"]) for i in ids)
    assert_sound(library)


@pytest.mark.parametrize("point", FOLDER_POINTS)
def test_folder_removal_resumes_after_a_crash(world, tmp_path, point):
    # No CLI command removes a folder: the GUI calls this core function on its writer lane.
    library, env = indexed_copy(world, tmp_path), world["env"]
    gone, kept = (str(r) for r in world["roots"])
    argv = [sys.executable, "-c", REMOVE_FOLDER, str(library), gone]
    photos = query_db(library, "SELECT id, path FROM photos ORDER BY id")
    kept_ids = [i for i, p in photos if p.startswith(os.path.join(kept, ""))]
    lib = Library(library)
    for pid, _ in photos:  # photos carry labels too, which go (or stay) with them
        set_feedback(lib, pid, "dog", accepted=True)
    lib.close()
    before = query_db(library, "SELECT count(*) FROM photos")

    crash(argv, env, point, 1)
    if point.endswith("written"):
        assert query_db(library, "SELECT count(*) FROM photos") == before  # all rolled back
        assert count(library, "SELECT count(*) FROM folders WHERE path = ?", (gone,)) == 1
    else:
        assert count(library, "SELECT count(*) FROM folders WHERE path = ?", (gone,)) == 0

    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert int(again.stdout) == (PHOTOS // 2 if point.endswith("written") else 0)
    assert [p for (p,) in query_db(library, "SELECT path FROM folders")] == [kept]
    assert [i for (i,) in query_db(library, "SELECT id FROM photos ORDER BY id")] == kept_ids
    assert [i for (i,) in query_db(library, "SELECT photo_id FROM embeddings ORDER BY photo_id")] == kept_ids
    assert [i for (i,) in query_db(library, "SELECT photo_id FROM labels ORDER BY photo_id")] == kept_ids
    assert_sound(library)


@pytest.mark.parametrize("point", FEEDBACK_POINTS)
@pytest.mark.parametrize("before", [None, "accepted"], ids=["new-row", "changed-row"])
def test_feedback_resumes_after_a_crash(world, tmp_path, point, before):
    library, env = indexed_copy(world, tmp_path), world["env"]
    pid = query_db(library, "SELECT min(id) FROM photos")[0][0]
    if before:
        lib = Library(library)
        set_feedback(lib, pid, "dog", accepted=True)
        lib.close()
    state = "SELECT photo_id, label, source, status FROM labels"

    crash_cli(library, ["label", "reject", str(pid), "dog", "--json"], env, point, at=1)
    if point.endswith("written"):
        assert query_db(library, state) == ([(pid, "dog", "user", before)] if before else [])
    else:
        assert query_db(library, state) == [(pid, "dog", "user", "rejected")]

    assert ok_json(run_cli(library, "label", "reject", str(pid), "dog", "--json", env=env))["status"] == "rejected"
    assert query_db(library, state) == [(pid, "dog", "user", "rejected")]
    assert_sound(library)
