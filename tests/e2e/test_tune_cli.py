"""``clipdesk tune`` end to end on the shared photos with the tiny model: mechanics, with figures that can fail.

The tiny model's weights are random, so what is measured is the method's
mechanics, not retrieval quality: near-duplicate mAP@100 on held-out photos,
scored on edit kinds training never used (small rotations, JPEG re-encodes,
text overlays, screenshots), must rise clearly; the library keeps one vector
per photo per identity; ``index`` after a tuning derives the new photo's
tuned vector; ``--revert`` gives back the base results exactly.
"""

from __future__ import annotations

import json

import pytest
from _cli import TINY_KEY, cli_env, ok_json, query_db, run_cli
from PIL import Image

from clipdesk.tuning.views import HELDOUT_KINDS, TRAIN_KINDS

QUERIES = (("search", "a dog running on the grass"),)  # one text and one similar search: each is a CLI start


def _add_user_captions(library, coco) -> int:
    """Captions a user wrote by hand (the first COCO caption of each photo): the library's own pseudo-captions."""
    from pathlib import Path

    from sqlalchemy import select

    from clipdesk.store.db import Library
    from clipdesk.store.models import Caption, Photo

    first = {e["file"]: e["captions"][0] for e in json.loads((coco / "captions.json").read_text())}
    lib = Library(library)
    with lib.session() as s, s.begin():
        rows = s.execute(select(Photo.id, Photo.path)).all()
        added = [Caption(photo_id=pid, text=first[Path(p).name], source="user") for pid, p in rows
                 if Path(p).name in first]
        s.add_all(added)
    lib.close()
    return len(added)


def _searches(world, folder) -> list[list[tuple[int, float]]]:
    out = []
    for command, query in (*QUERIES, ("similar", str(world["probe"]))):
        found = ok_json(run_cli(world["library"], command, query, "-k", "15", "--folder", str(folder), "--all",
                                "--json", env=world["env"]))
        out.append([(r["id"], r["score"]) for r in found["results"]])
    return out


def _counts(library) -> dict[str, int]:
    return dict(query_db(library, "SELECT model_key, count(*) FROM embeddings GROUP BY model_key"))


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data):
    tmp = tmp_path_factory.mktemp("e2e-tune")
    env = cli_env(tmp / "models")
    library = tmp / "library"
    coco, imagenet = shared_data / "coco_mini", shared_data / "imagenet_sample"
    ok_json(run_cli(library, "index", coco / "images", imagenet, "--json", env=env, timeout=300))
    world = {"tmp": tmp, "env": env, "library": library, "coco": coco, "imagenet": imagenet,
             "captions": _add_user_captions(library, coco), "probe": sorted(imagenet.glob("*.JPEG"))[7]}
    world["before"] = _searches(world, imagenet)
    world["tune"] = ok_json(run_cli(library, "tune", "--photos", "600", "--coco", coco, "--json", env=env, timeout=400))
    return world


def test_tune_raises_near_duplicate_map_on_edits_it_never_trained_on(world):
    report = world["tune"]
    assert world["captions"] == 239
    assert report["kept"] and not report["cancelled"], report["reasons"]
    assert not set(TRAIN_KINDS) & set(HELDOUT_KINDS)  # the guard's edits are kinds training never rendered
    before, after = report["before"]["near_duplicates"], report["after"]["near_duplicates"]
    print(f"\ntiny model, shared photos: near-duplicate mAP@100 {before['mAP@100']:.3f} -> {after['mAP@100']:.3f}, "
          f"R@1 {before['R@1']:.3f} -> {after['R@1']:.3f} on {before['n']} held-out photos; "
          f"chose {report['image_settings']}; took {report['seconds']}")
    assert before["n"] == after["n"] == 64
    assert after["mAP@100"] > before["mAP@100"] + 0.02  # clearly above, not noise
    for section in ("heldout_captions", "coco_mini"):  # text search checked, and within one point
        assert report["before"][section]["n"] > 0
        for k in (1, 5, 10):
            assert report["after"][section][f"R@{k}"] >= report["before"][section][f"R@{k}"] - 0.01
    sizes = report["sizes"]
    assert sizes["training_photos"] + sizes["validation_photos"] == 600 and sizes["encoded_views"] == 600 * 4
    assert sizes["heldout_views"] == 64 * 3 and sizes["coco_captions"] == 1195


def test_one_vector_per_photo_per_identity_and_searches_use_the_tuned_one(world):
    key = world["tune"]["tuned_key"]
    assert key.startswith(TINY_KEY + "+tuned-")
    assert _counts(world["library"]) == {TINY_KEY: 1239, key: 1239}
    status = ok_json(run_cli(world["library"], "status", "--json", env=world["env"]))
    assert status["tuned"] and status["search_key"] == key and status["model_key"] == TINY_KEY
    tuned = ok_json(run_cli(world["library"], "tune", "--status", "--json", env=world["env"]))
    assert tuned["active"] and tuned["stale"] == 0 and tuned["sidecar"]["after"] == world["tune"]["after"]
    assert _searches(world, world["imagenet"]) != world["before"]  # the tuned space ranks differently


def test_index_after_tuning_derives_the_new_photos_tuned_vector(world):
    new = world["tmp"] / "new"
    new.mkdir()
    with Image.open(world["probe"]) as im:
        im.convert("RGB").rotate(4, expand=True).save(new / "tilted.jpg", quality=80)
    report = ok_json(run_cli(world["library"], "index", new, "--json", env=world["env"]))
    assert report["new"] == 1 and report["tuned_vectors_written"] == 1
    assert _counts(world["library"]) == {TINY_KEY: 1240, world["tune"]["tuned_key"]: 1240}


def test_revert_gives_back_the_base_results_exactly(world):
    reverted = ok_json(run_cli(world["library"], "tune", "--revert", "--json", env=world["env"]))
    assert reverted["reverted"] and reverted["removed_vectors"] == 1240 and reverted["without_base_vectors"] == 0
    assert _counts(world["library"]) == {TINY_KEY: 1240}
    assert not list((world["library"] / "models" / "tuning").glob("*"))
    assert _searches(world, world["imagenet"]) == world["before"]  # same photos, same scores, same order
    status = ok_json(run_cli(world["library"], "status", "--json", env=world["env"]))
    assert not status["tuned"] and status["search_key"] == TINY_KEY
