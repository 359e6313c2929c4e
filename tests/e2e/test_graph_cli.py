"""``clipdesk index`` brings a large library's search graph up to date in place, and search uses it."""

from __future__ import annotations

import shutil

from _cli import cli_env, ok_json, run_cli


def test_index_updates_the_graph_in_place(tmp_path, coco_images):
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in coco_images[:6]:
        shutil.copy(src, photos / src.name)
    library = tmp_path / "lib"
    # A threshold of 1: this little library searches through the graph, as one of 300k photos would.
    env = cli_env(tmp_path / "models", CLIPDESK_HNSW_MIN_SIZE="1")
    first = ok_json(run_cli(library, "index", photos, "--json", "--workers", "0", env=env))
    assert first["graph"] == {"built": True, "added": 6, "removed": 0, "updated": 0, "calibrated": True}
    shutil.copy(coco_images[6], photos / coco_images[6].name)
    (photos / coco_images[0].name).unlink()
    second = ok_json(run_cli(library, "index", photos, "--json", "--workers", "0", env=env))
    assert second["graph"] == {"built": False, "added": 1, "removed": 1, "updated": 0, "calibrated": False}
    found = ok_json(run_cli(library, "similar", str(photos / coco_images[6].name), "--json", "--all", env=env))
    assert found["mode"] == "hnsw"
    assert coco_images[0].name not in {r["path"].rsplit("/", 1)[-1] for r in found["results"]}
    assert len(found["results"]) == 5  # the six photos there now, less the query photo itself
    # Control: below the threshold no graph is made.
    small = ok_json(run_cli(library, "index", photos, "--json", "--workers", "0",
                            env=cli_env(tmp_path / "models")))
    assert small["graph"] is None
