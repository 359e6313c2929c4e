"""``clipdesk captions show|set|run --ids|export-xmp`` and ``eval captions``, in-process."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from _vecdb import add_photos

from clipdesk.cli import main
from clipdesk.labels.xmp import read_description, sidecar_path

TINY_KEY = "open_clip:clipdesk-tiny-random:random-seed0"
TINY_COCA = ["--backend", "coca", "--caption-model", "tiny-coca", "--max-len", "6", "--candidates", "2"]


@pytest.fixture
def lib_photos(tmp_path, coco_images, library):
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = [shutil.copy(src, folder / src.name) for src in coco_images[:2]]
    rng = np.random.default_rng(0)
    ids = add_photos(library, TINY_KEY, [{"path": str(p), "vector": rng.normal(size=64)} for p in paths])
    return library, ids, paths


def _cli(capsys, library, *args, model=None) -> dict:
    code = main(["--library", str(library.root), *(["--model", model] if model else []), *map(str, args), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_set_run_show_and_export(capsys, lib_photos):
    library, ids, paths = lib_photos
    before = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths]
    _cli(capsys, library, "captions", "set", ids[0], "  Grandma's  dog ")
    report = _cli(capsys, library, "captions", "run", *TINY_COCA, "--ids", ids[0], "--force", model="tiny-random")
    assert (report["todo"], report["captioned"]) == (1, 1) and "warning" in report
    shown = _cli(capsys, library, "captions", "show", paths[0])["captions"]  # by file path too
    assert [(c["source"], c["model"]) for c in shown] == [("user", None), ("auto", report["caption_model"])]
    assert shown[0]["text"] == "Grandma's dog" and -1 <= shown[1]["score"] <= 1

    out = _cli(capsys, library, "captions", "export-xmp")
    assert out["written"] == [str(sidecar_path(paths[0]))] and out["skipped"] == []
    assert read_description(sidecar_path(paths[0])) == "Grandma's dog"
    assert [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths] == before

    _cli(capsys, library, "captions", "set", ids[0], "")
    assert [c["source"] for c in _cli(capsys, library, "captions", "show", ids[0])["captions"]] == ["auto"]


def test_unknown_photo_is_a_clean_error(capsys, lib_photos):
    library, _, _ = lib_photos
    assert main(["--library", str(library.root), "captions", "show", "999"]) == 2
    assert "No photo '999'" in capsys.readouterr().err


def test_eval_captions_command(capsys, library):
    result = _cli(capsys, library, "eval", "captions", *TINY_COCA, "--limit", "2", "--no-meteor", model="tiny-random")
    assert result["photos"] == 2 and result["backend"] == "coca" and "warning" in result
    assert result["reranked"]["meteor"] is None and 0 <= result["reranked"]["bleu4"] <= 1
    assert 0 <= result["reranked"]["clipscore"] <= 2.5


def test_max_len_past_the_decoder_is_a_usage_error(capsys, lib_photos):
    library, ids, _ = lib_photos
    args = ["--library", str(library.root), "--model", "tiny-random", "captions", "run", "--backend", "coca",
            "--caption-model", "tiny-coca", "--ids", str(ids[0])]
    assert main([*args, "--max-len", "77"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clipdesk: --max-len must be between 1 and 76") and "\n" not in err
