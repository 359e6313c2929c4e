"""``clipdesk captions run`` and ``search`` by caption words, as a user runs them (subprocesses).

Mechanics only: the test-only tiny models write meaningless captions. The
other caption commands run in-process in tests/core/test_caption_commands.py.
"""

from __future__ import annotations

import shutil

import pytest
from _cli import assert_one_line_failure, cli_env, ok_json, query_db, run_cli

from clipdesk.captions.store import set_user_caption
from clipdesk.store.db import Library

pytestmark = pytest.mark.slow
TINY_COCA = ["--backend", "coca", "--caption-model", "tiny-coca", "--max-len", "6", "--candidates", "2"]


def test_caption_run_then_search_by_caption_words(tmp_path, coco_images):
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in coco_images[:3]:
        shutil.copy(src, photos / src.name)
    library, env = tmp_path / "lib", cli_env(tmp_path / "models")
    ok_json(run_cli(library, "index", photos, "--json", "--workers", "0", env=env))

    report = ok_json(run_cli(library, "captions", "run", *TINY_COCA, "--json", env=env))
    assert (report["todo"], report["captioned"], report["failed"]) == (3, 3, 0)
    assert report["caption_model"] == "open_clip:clipdesk-tiny-coca:random-seed0"
    assert query_db(library, "SELECT DISTINCT source, model_key FROM captions") == [("auto", report["caption_model"])]

    ids = [r[0] for r in query_db(library, "SELECT id FROM photos ORDER BY id")]
    lib = Library(library)
    set_user_caption(lib, ids[1], "A purple giraffe eating cake")
    lib.close()
    found = ok_json(run_cli(library, "search", "giraffes", "-k", "1", "--json", env=env))
    assert [r["id"] for r in found["results"]] == [ids[1]]

    line = assert_one_line_failure(run_cli(library, "captions", "run", env=env))  # CoCa weights not downloaded
    assert "coca_ViT-B-32" in line and "--caption-model" in line
