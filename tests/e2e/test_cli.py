"""The ``clipdesk`` command end to end, as a user runs it: a subprocess on real photos.

One library indexes the whole shared data set (1,239 photos) once for the
module; a second tree made here adds bad files, near-duplicates, PNGs and
dated photos. Every command runs with the test-only random model, offline.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from _cli import (
    TINY,
    TINY_KEY,
    assert_one_line_failure,
    cli_args,
    cli_env,
    embedding_count,
    ok_json,
    query_db,
    run_cli,
)
from PIL import Image

pytestmark = pytest.mark.slow

SHARED_PHOTOS = 1239
DUP_SOURCE = "000000000139.jpg"  # a COCO photo; its rescaled, re-encoded copy must be its nearest neighbour
DATED = {"dated_2015_a.jpg": "2015:06:01 10:00:00", "dated_2015_b.jpg": "2015:07:14 18:30:00",
         "dated_2021.jpg": "2021:03:03 09:00:00"}


def _make_extra_tree(root: Path, coco: list[Path]) -> dict[str, object]:
    """Bad files, copies, a near-duplicate, PNGs and photos with EXIF dates."""
    bad = root / "bad"
    bad.mkdir(parents=True)
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.png").write_text("this is a text file, not a picture\n")
    for src in coco[1:4]:
        shutil.copy(src, bad / f"copy_{src.name}")
    near = root / "near"
    near.mkdir()
    with Image.open(coco[0].parent / DUP_SOURCE) as im:
        small = im.convert("RGB").resize((round(im.width * 0.7), round(im.height * 0.7)), Image.Resampling.LANCZOS)
        small.save(near / "rescaled_copy.jpg", quality=55)
    png = root / "png"
    png.mkdir()
    for src in coco[4:7]:
        with Image.open(src) as im:
            im.convert("RGB").save(png / f"{src.stem}.png")
    dated = root / "dated"
    dated.mkdir()
    for (name, stamp), src in zip(DATED.items(), coco[7:10], strict=True):
        with Image.open(src) as im:
            exif = Image.Exif()
            exif[0x0132] = stamp  # DateTime
            im.convert("RGB").save(dated / name, quality=90, exif=exif)
    return {"bad": {str(bad / "empty.jpg"), str(bad / "notes.png")}, "near": near / "rescaled_copy.jpg",
            "png": png, "dated": dated}


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data, coco_images):
    """Index the shared data, record status and errors, then index the extra tree."""
    tmp = tmp_path_factory.mktemp("e2e-cli")
    env = cli_env(tmp / "models")
    library = tmp / "library"
    first = run_cli(library, "index", shared_data, "--json", env=env, timeout=240)
    status = run_cli(library, "status", "--json", env=env)
    errors = run_cli(library, "errors", "--json", env=env)
    extra_root = tmp / "extra"
    extra = _make_extra_tree(extra_root, coco_images)
    second = run_cli(library, "index", extra_root, "--json", env=env, timeout=240)
    errors_after = run_cli(library, "errors", "--json", env=env)
    errors_human = run_cli(library, "errors", env=env)
    return {"tmp": tmp, "env": env, "library": library, "first": first, "status": status, "errors": errors,
            "extra_root": extra_root, "extra": extra, "second": second, "errors_after": errors_after,
            "errors_human": errors_human}


def _search(world, *args: str) -> dict:
    return ok_json(run_cli(world["library"], *args, "--json", env=world["env"]))


def _paths(result: dict) -> list[str]:
    return [r["path"] for r in result["results"]]


# -- indexing, status, errors ---------------------------------------------------


def test_index_whole_shared_data(world):
    report = ok_json(world["first"])
    assert report["found"] == SHARED_PHOTOS
    assert report["new"] == report["embedded"] == SHARED_PHOTOS
    assert report["errors"] == 0 and not report["cancelled"]
    assert report["model"] == TINY


def test_status_after_index(world, shared_data):
    status = ok_json(world["status"])
    assert status["photos"] == status["embedded"] == SHARED_PHOTOS
    assert status["not_embedded"] == 0 and status["missing"] == 0 and status["errors"] == 0
    assert status["model"] == TINY and status["model_key"] == TINY_KEY
    assert [f["path"] for f in status["folders"]] == [str(shared_data)]
    assert status["folders"][0]["complete"] is True


def test_errors_empty_for_clean_data(world):
    assert ok_json(world["errors"])["errors"] == []


def test_errors_lists_exactly_the_bad_files(world):
    report = ok_json(world["second"])
    assert report["errors"] == 2
    assert report["new"] == report["found"] - 2  # the copies are new photos: paths differ
    errors = ok_json(world["errors_after"])["errors"]
    assert {e["path"] for e in errors} == world["extra"]["bad"]
    reasons = {Path(e["path"]).name: e["reason"] for e in errors}
    assert "empty" in reasons["empty.jpg"] and "0 bytes" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.png"]
    human = world["errors_human"]
    assert human.returncode == 0
    assert len(human.stdout.strip().splitlines()) == 2
    assert all(": " in line for line in human.stdout.splitlines())


def test_global_options_go_before_or_after_the_subcommand(world):
    before = run_cli(world["library"], "--json", "status", env=world["env"], model=None)
    after = run_cli(world["library"], "status", "--json", env=world["env"], model=None)
    assert ok_json(before) == ok_json(after)
    assert ok_json(after)["model"] == TINY  # the library remembers the model it was indexed with


# -- search --------------------------------------------------------------------


def test_search_ranked_json(world):
    result = _search(world, "search", "dog")
    hits = result["results"]
    assert len(hits) == 20  # the default -k; the random model applies no cut-off
    fused = [h["rank_score"] for h in hits]
    assert fused == sorted(fused, reverse=True)
    # ImageNet's file names say "dog": those photos' names count too, and each says so.
    named = [h for h in hits if any(w["source"] == "name" for w in h["why"])]
    assert named
    assert all("dog" in next(w["text"] for w in h["why"] if w["source"] == "name").lower() for h in named)
    rest = [h["score"] for h in hits if h not in named]
    assert rest == sorted(rest, reverse=True)  # CLIP alone orders the others
    assert all(h["why"] == [{"source": "clip", "score": h["score"]}] for h in hits if h not in named)
    assert all(isinstance(h["id"], int) for h in hits)
    assert len({h["id"] for h in hits}) == len(hits)
    assert all(os.path.isfile(h["path"]) for h in hits)
    assert "warning" in result  # the random model says its results mean nothing


def test_search_human_output_and_top_k(world):
    proc = run_cli(world["library"], "search", "dog", "-k", "5", env=world["env"])
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    hits = [line for line in lines if not line.startswith("(")]  # the first line names the model
    assert len(hits) == 5
    for line in hits:
        score, path = line.split(None, 1)
        float(score)
        assert os.path.isfile(path.replace("  (weak match)", ""))


def test_search_with_negative(world):
    quoted = _search(world, "search", "beach -people", "-k", "10")
    assert quoted["query"] == "beach -people" and len(quoted["results"]) == 10
    # Unquoted, as the README shows it: argparse must not take -people for an option
    # (nor -horse for -h, nor -kids for -k).
    unquoted = _search(world, "search", "beach", "-people", "-k", "10")
    assert _paths(unquoted) == _paths(quoted)
    tricky = run_cli(world["library"], "search", "beach", "-horse", "-kids", "-k", "3", env=world["env"])
    assert tricky.returncode == 0, tricky.stderr
    assert "usage:" not in tricky.stdout + tricky.stderr


def test_search_image_plus_text(world, coco_images):
    result = _search(world, "search", "--image", coco_images[0], "at", "night", "-k", "5")
    assert len(result["results"]) == 5
    assert str(coco_images[0]) not in _paths(result)  # the query photo itself is never a result


# -- similar -------------------------------------------------------------------


def test_similar_finds_the_rescaled_copy(world, coco_images):
    original = str(coco_images[0].parent / DUP_SOURCE)
    copy = str(world["extra"]["near"])
    from_original = _search(world, "similar", original, "-k", "5")
    assert _paths(from_original)[0] == copy
    assert original not in _paths(from_original)
    from_copy = _search(world, "similar", copy, "-k", "5")
    assert _paths(from_copy)[0] == original


def test_similar_by_library_id(world, coco_images):
    original = str(coco_images[0].parent / DUP_SOURCE)
    [(photo_id,)] = query_db(world["library"], "SELECT id FROM photos WHERE path = ?", (original,))
    result = _search(world, "similar", str(photo_id), "-k", "3")
    assert _paths(result)[0] == str(world["extra"]["near"])
    assert photo_id not in [r["id"] for r in result["results"]]


def test_similar_external_file(world, coco_images, tmp_path):
    outside = tmp_path / "outside.jpg"  # not in the library
    with Image.open(coco_images[20]) as im:
        im.convert("RGB").resize((im.width // 2, im.height // 2)).save(outside, quality=80)
    result = _search(world, "similar", outside, "-k", "4")
    assert len(result["results"]) == 4
    assert _paths(result)[0] == str(coco_images[20])


def test_similar_with_text(world, coco_images):
    # Text next to an image, negatives alone included (the image is the positive).
    # The random model's text vectors outweigh its image differences: only check it runs.
    result = _search(world, "similar", coco_images[20], "--text", "-people", "at", "night", "-k", "4")
    assert result["query"].endswith("at night -people")
    assert len(result["results"]) == 4 and str(coco_images[20]) not in _paths(result)


# -- filters -------------------------------------------------------------------


def test_filter_folder(world):
    folder = world["extra"]["png"].parent  # the extra tree: bad copies, png, near, dated
    result = _search(world, "search", "dog", "--folder", folder, "-k", "100")
    expected = {p for (p,) in query_db(world["library"], "SELECT path FROM photos WHERE path LIKE ?",
                                       (f"{folder}{os.sep}%",))}
    assert set(_paths(result)) == expected and len(expected) == 10


def _some_photo_id(world) -> int:
    """A photo of the shared data: ``similar ID`` needs no model load, so filters test fast."""
    return query_db(world["library"], "SELECT min(id) FROM photos")[0][0]


def test_filter_type(world):
    result = _search(world, "similar", str(_some_photo_id(world)), "--type", "png", "-k", "100")
    paths = _paths(result)
    assert len(paths) == 3
    assert all(p.endswith(".png") and p.startswith(str(world["extra"]["png"])) for p in paths)


def test_filter_dates(world):
    query_id = _some_photo_id(world)
    result = _search(world, "similar", str(query_id), "--from", "2015-01-01", "--to", "2016-12-31", "-k", "2000")
    rows = dict(query_db(world["library"], "SELECT id, taken_at FROM photos WHERE taken_at IS NOT NULL"))
    ids = [r["id"] for r in result["results"]]
    assert ids
    for photo_id in ids:
        taken = datetime.fromisoformat(rows[photo_id])
        assert datetime(2015, 1, 1) <= taken <= datetime(2016, 12, 31)
    in_range = {pid for pid, t in rows.items() if datetime(2015, 1, 1) <= datetime.fromisoformat(t) <= datetime(2016, 12, 31)}
    assert set(ids) == in_range - {query_id}
    dated = world["extra"]["dated"]
    assert {str(dated / "dated_2015_a.jpg"), str(dated / "dated_2015_b.jpg")} <= set(_paths(result))
    assert str(dated / "dated_2021.jpg") not in _paths(result)


# -- failures: exit codes and one-line messages -----------------------------------


def test_unknown_model(tmp_path):
    env = cli_env(tmp_path / "models")
    proc = run_cli(tmp_path / "lib", "index", tmp_path, env=env, model="no-such-model")
    line = assert_one_line_failure(proc)
    assert "no-such-model" in line


def test_missing_weights_offline(tmp_path, coco_images):
    env = cli_env(tmp_path / "models")
    proc = run_cli(tmp_path / "lib", "index", coco_images[0], env=env, model="vit-b-32")
    assert proc.returncode == 3
    line = assert_one_line_failure(proc)
    assert "vit-b-32" in line
    assert str(tmp_path / "models") in line  # where it looked
    assert "ViT-B-32/datacomp_xl_s13b_b90k:/path/to/" in line  # how to give a local file, with its tag


def test_search_empty_library(tmp_path):
    env = cli_env(tmp_path / "models")
    proc = run_cli(tmp_path / "lib", "search", "dog", env=env)
    assert proc.returncode == 4
    line = assert_one_line_failure(proc)
    assert "clipdesk index" in line


def test_similar_missing_file_and_unknown_id(world, tmp_path):
    proc = run_cli(world["library"], "similar", tmp_path / "nope.jpg", env=world["env"])
    assert proc.returncode == 2
    assert "nope.jpg" in assert_one_line_failure(proc)
    proc = run_cli(world["library"], "similar", "987654321", env=world["env"])
    assert proc.returncode == 2
    assert "987654321" in assert_one_line_failure(proc)


def test_bad_queries(world):
    only_negative = run_cli(world["library"], "search", "-people", env=world["env"])
    assert only_negative.returncode == 2
    assert "negative" in assert_one_line_failure(only_negative)
    nothing = run_cli(world["library"], "search", env=world["env"])
    assert nothing.returncode == 2
    assert_one_line_failure(nothing)


def test_bad_device(world):
    proc = run_cli(world["library"], "--device", "tpu", "search", "dog", env=world["env"])
    assert proc.returncode == 2
    assert "tpu" in assert_one_line_failure(proc)


def test_index_nonexistent_path(tmp_path):
    env = cli_env(tmp_path / "models")
    proc = run_cli(tmp_path / "lib", "index", tmp_path / "no-such-folder", env=env)
    assert proc.returncode == 2
    assert "no-such-folder" in assert_one_line_failure(proc)


# -- Ctrl-C ----------------------------------------------------------------------


def test_ctrl_c_stops_cleanly_and_index_resumes(tmp_path, shared_data):
    env = cli_env(tmp_path / "models")
    library = tmp_path / "lib"
    tree = shared_data / "imagenet_sample"
    total = len(list(tree.glob("*.JPEG")))
    proc = subprocess.Popen(cli_args(library, "index", tree, "--batch-size", "8"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while embedding_count(library) <= 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the indexer wrote nothing in 120 s"
            time.sleep(0.05)
        # A terminal's Ctrl-C goes to the whole foreground process group, decode workers too.
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert stopped_in < 10
    assert "Traceback" not in err
    assert "again" in err and "Stopped" in out
    done = embedding_count(library)
    assert 0 < done < total

    rerun = ok_json(run_cli(library, "index", tree, "--batch-size", "8", "--json", env=env, timeout=240))
    assert rerun["found"] == total and rerun["errors"] == 0
    assert rerun["embedded"] == total - done  # what was done is not done again
    rows = query_db(library, "SELECT p.path, count(e.photo_id) FROM photos p "
                             "LEFT JOIN embeddings e ON e.photo_id = p.id AND e.model_key = ? GROUP BY p.id", (TINY_KEY,))
    assert len(rows) == total
    assert all(n == 1 for _, n in rows)
    assert {p for p, _ in rows} == {str(p) for p in tree.glob("*.JPEG")}


# -- no subcommand ---------------------------------------------------------------


def test_no_subcommand_without_a_display_explains(tmp_path):
    """Where no window can open, bare ``clipdesk`` says so and points at the CLI."""
    env = cli_env(tmp_path / "models", CLIPDESK_HOME=str(tmp_path / "home"))
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(var, None)
    script = Path(sys.executable).with_name("clipdesk")
    cmd = [str(script)] if script.exists() else cli_args(tmp_path / "lib", model=None)[:3]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "no display" in proc.stderr and "clipdesk search" in proc.stderr


def test_models_says_which_weights_are_local(tmp_path):
    env = cli_env(tmp_path / "models")
    listing = ok_json(run_cli(tmp_path / "lib", "models", "--json", env=env, model=None))
    present = {m["name"]: m["weights_present"] for m in listing["models"]}
    assert present["tiny-random"] is True
    assert present["vit-b-32"] is False  # an empty models folder, offline
    assert [m["name"] for m in listing["models"] if m["default"]] == ["vit-b-32"]


def test_gpu_check_script_runs_its_whole_path_on_the_cpu(tmp_path):
    """scripts/gpu_check.sh is what a lent GPU runs in one call; here the same path runs on the CPU."""
    root = Path(__file__).resolve().parents[2]
    env = cli_env(tmp_path / "models", CLIPDESK_PYTHON=sys.executable)
    proc = subprocess.run([str(root / "scripts" / "gpu_check.sh"), "--device", "cpu", "--arch", "clipdesk-tiny-random",
                           "--photos", "12", "--batch-size", "4", "--workers", "0", "--precision", "bf16"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=os.getcwd())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "indexed 12/12 photos" in proc.stdout and "key open_clip:clipdesk-tiny-random:random-seed0:bf16" in proc.stdout
    assert proc.stdout.rstrip().endswith("OK")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_index_and_search_at_half_precision_from_the_command_line(tmp_path, coco_images, precision):
    """The issue's acceptance line: --precision fp16/bf16 --device cpu index ... works end to end."""
    env = cli_env(tmp_path / "models")
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in coco_images[:4]:
        shutil.copy(src, folder / src.name)
    lib = tmp_path / "lib"
    flags = ["--precision", precision, "--device", "cpu"]
    report = ok_json(run_cli(lib, *flags, "index", folder, "--json", "--workers", "0", env=env))
    assert (report["found"], report["embedded"], report["errors"]) == (4, 4, 0)
    assert embedding_count(lib, f"{TINY_KEY}:{precision}") == 4 and embedding_count(lib) == 0
    hits = ok_json(run_cli(lib, *flags, "search", "a dog", "--json", env=env))["results"]
    assert len(hits) == 4
    query = str(folder / coco_images[0].name)
    similar = ok_json(run_cli(lib, *flags, "similar", query, "--json", env=env))["results"]
    assert len(similar) == 3 and query not in [r["path"] for r in similar]  # the others, from its stored vector
    line = assert_one_line_failure(run_cli(lib, "--device", "cpu", "search", "a dog", env=env))  # fp32 here
    assert f"--precision {precision}" in line
