"""``clipdesk captions ...``, ``search`` by caption words and ``eval captions``, as a user runs them.

Mechanics only: the test-only tiny models write meaningless captions.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
from _cli import assert_one_line_failure, cli_env, ok_json, query_db, run_cli

pytestmark = pytest.mark.slow
TINY_COCA = ["--backend", "coca", "--caption-model", "tiny-coca", "--max-len", "6", "--candidates", "2"]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_caption_run_show_set_search_and_export(tmp_path, coco_images):
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in coco_images[:3]:
        shutil.copy(src, photos / src.name)
    before = {p.name: _digest(p) for p in photos.iterdir()}
    library, env = tmp_path / "lib", cli_env(tmp_path / "models")
    ok_json(run_cli(library, "index", photos, "--json", "--workers", "0", env=env))

    report = ok_json(run_cli(library, "captions", "run", *TINY_COCA, "--json", env=env))
    assert (report["todo"], report["captioned"], report["failed"]) == (3, 3, 0)
    assert report["caption_model"] == "open_clip:clipdesk-tiny-coca:random-seed0"

    ids = [r[0] for r in query_db(library, "SELECT id FROM photos ORDER BY id")]
    ok_json(run_cli(library, "captions", "set", ids[1], "A purple giraffe eating cake", "--json", env=env))
    redo = ok_json(run_cli(library, "captions", "run", *TINY_COCA, "--force", "--ids", ids[1], "--json", env=env))
    assert redo["captioned"] == 1
    shown = ok_json(run_cli(library, "captions", "show", ids[1], "--json", env=env))["captions"]
    assert [c["source"] for c in shown] == ["user", "auto"]
    assert shown[0]["text"] == "A purple giraffe eating cake"  # the re-run left the hand edit alone
    assert shown[1]["model"] == report["caption_model"] and -1 <= shown[1]["score"] <= 1

    found = ok_json(run_cli(library, "search", "giraffes", "-k", "1", "--json", env=env))
    assert [r["id"] for r in found["results"]] == [ids[1]]

    out = ok_json(run_cli(library, "captions", "export-xmp", "--json", env=env))
    assert len(out["written"]) == 3
    sidecar = (photos / query_db(library, "SELECT path FROM photos WHERE id = ?", (ids[1],))[0][0]
               .rsplit("/", 1)[1]).with_suffix(".jpg.xmp")
    assert "A purple giraffe eating cake" in sidecar.read_text()
    assert {p.name: _digest(p) for p in photos.iterdir() if p.suffix == ".jpg"} == before

    scores = ok_json(run_cli(library, "eval", "captions", *TINY_COCA, "--limit", "2", "--no-meteor", "--json",
                             env=env))
    assert scores["photos"] == 2 and scores["reranked"]["meteor"] is None
    assert 0 <= scores["reranked"]["bleu4"] <= 1 and "warning" in scores

    line = assert_one_line_failure(run_cli(library, "captions", "run", env=env))  # CoCa weights not downloaded
    assert "coca_ViT-B-32" in line and "--caption-model" in line
