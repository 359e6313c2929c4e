"""The near-duplicate benchmark: reproducible for a seed, every transform real, held-out kinds, the model input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clipdesk.eval.encode import model_input
from clipdesk.eval.near_dup import ORIGINAL, build_near_duplicate_set, load_upright
from clipdesk.eval.transforms import HELD_OUT, TRANSFORMS, make_view, make_views, split_transforms
from clipdesk.imageio import read_photo


@pytest.fixture(scope="module")
def pattern() -> Image.Image:
    """320 x 240, no symmetry: a horizontal and a vertical ramp, and a bright block in the top-left corner."""
    y, x = np.mgrid[0:240, 0:320]
    arr = np.stack([x * 255 // 319, y * 255 // 239, (x + y) % 256], axis=-1).astype(np.uint8)
    arr[10:60, 10:90] = (250, 250, 20)
    return Image.fromarray(arr, "RGB")


def _fake_photos(n: int) -> list[str]:
    return [f"/nowhere/photo_{i:03d}.jpg" for i in range(n)]  # the builder never opens a photo


def test_same_seed_same_benchmark_other_seed_another():
    photos = _fake_photos(30)
    a, b = build_near_duplicate_set(photos, 6, seed=1), build_near_duplicate_set(photos, 6, seed=1)
    assert a.items == b.items and a.digest == b.digest and list(a.queries) == list(b.queries)
    c = build_near_duplicate_set(photos, 6, seed=2)
    assert list(c.queries) != list(a.queries) and c.digest != a.digest
    # Originals first, in photo order; then each query's views, one per transform, in TRANSFORMS order.
    assert [it.transform for it in a.items[:30]] == [ORIGINAL] * 30
    assert [it.group for it in a.items[:30]] == list(range(30))
    first_views = a.items[30:30 + len(TRANSFORMS)]
    assert [it.transform for it in first_views] == list(TRANSFORMS)
    assert {it.group for it in first_views} == {a.queries[0]}
    assert len(a.items) == 30 + 6 * len(TRANSFORMS)
    assert build_near_duplicate_set(photos, None, seed=1).queries.tolist() == list(range(30))  # None: every photo


def test_relevance_is_the_query_views_without_the_query():
    bench = build_near_duplicate_set(_fake_photos(10), 3, seed=0, transforms=("crop", "flip"))
    relevant, exclude = bench.relevance()
    assert relevant.shape == exclude.shape == (3, 10 + 3 * 2)
    for row, q in enumerate(bench.queries):
        assert exclude[row].nonzero()[0].tolist() == [q]
        views = [i for i, it in enumerate(bench.items) if it.group == q and it.transform != ORIGINAL]
        assert relevant[row].nonzero()[0].tolist() == views


def test_held_out_transforms():
    train, test = split_transforms()
    assert set(test) == set(HELD_OUT) and not set(train) & set(test) and set(train) | set(test) == set(TRANSFORMS)
    bench = build_near_duplicate_set(_fake_photos(8), 4, seed=0, transforms=test)
    assert {it.transform for it in bench.items if it.transform != ORIGINAL} == set(test)
    assert bench.transforms == test
    assert split_transforms(["flip"]) == (tuple(t for t in TRANSFORMS if t != "flip"), ("flip",))
    with pytest.raises(ValueError, match="unknown transform"):
        split_transforms(["sharpen"])
    with pytest.raises(ValueError):
        build_near_duplicate_set(_fake_photos(3), 1, transforms=())


def test_a_view_depends_on_seed_photo_and_kind_only(pattern):
    same = np.asarray(make_view(pattern, "crop", seed=5, photo_key="a.jpg"))
    assert np.array_equal(same, np.asarray(make_view(pattern, "crop", seed=5, photo_key="a.jpg")))
    assert not np.array_equal(same, np.asarray(make_view(pattern, "crop", seed=6, photo_key="a.jpg")))
    # Asking for other transforms alongside does not change this one.
    (_, alone), = make_views(pattern, ["crop"], seed=5, photo_key="a.jpg")
    with_others = dict(make_views(pattern, ["flip", "crop", "text"], seed=5, photo_key="a.jpg"))
    assert np.array_equal(np.asarray(alone), np.asarray(with_others["crop"]))


def test_every_transform_changes_the_photo_as_its_kind_says(pattern):
    src = np.asarray(pattern)
    views = dict(make_views(pattern, seed=0, photo_key="p.png"))
    assert list(views) == list(TRANSFORMS)
    for name, view in views.items():
        arr = np.asarray(view.convert("RGB"))
        assert arr.shape != src.shape or np.abs(arr.astype(int) - src).mean() > 1.0, name
    w, h = pattern.size
    assert views["rotate90"].size == (h, w)
    r90 = np.asarray(views["rotate90"])
    assert np.array_equal(r90, np.rot90(src, 1)) or np.array_equal(r90, np.rot90(src, -1))
    assert np.array_equal(np.asarray(views["rotate180"]), np.rot90(src, 2))
    assert np.array_equal(np.asarray(views["flip"]), src[:, ::-1])
    cw, ch = views["crop"].size
    assert 0.5 * w - 1 <= cw <= 0.8 * w + 1 and 0.5 * h - 1 <= ch <= 0.8 * h + 1
    crop = np.asarray(views["crop"])
    assert any(np.array_equal(crop, src[t:t + ch, left:left + cw]) for t in range(h - ch + 1)
               for left in range(w - cw + 1))  # a window of the original, pixel for pixel
    assert 64 <= max(views["rescale"].size) <= 128
    rw, rh = views["rotate_small"].size
    assert rw > w and rh > h and tuple(np.asarray(views["rotate_small"])[0, 0]) == (0, 0, 0)  # black corner
    assert views["jpeg"].format == "JPEG" and views["jpeg"].size == (w, h)
    for name in ("colour", "exposure", "text"):
        assert views[name].size == (w, h), name
    bw, bh = views["border"].size
    pad = (bw - w) // 2
    assert bw - w == bh - h == 2 * pad > 0
    assert np.array_equal(np.asarray(views["border"])[pad:pad + h, pad:pad + w], src)
    lw, lh = views["letterbox"].size
    assert abs(lw / lh - w / h) > 0.05 and (lw == w or lh == h)
    box = np.asarray(views["letterbox"])
    top, left = (lh - h) // 2, (lw - w) // 2
    assert np.array_equal(box[top:top + h, left:left + w], src) and box[0, 0].sum() == 0
    assert views["screenshot"].size == (1280, 800)


def test_a_view_reaches_the_model_as_a_file_does(tmp_path, pattern):
    # A PNG has no reduced-size decode, so a file and the same pixels in memory must give the same input.
    path = tmp_path / "p.png"
    pattern.save(path)
    for squash in (False, True):
        from_file = read_photo(path, 64, squash).pixels
        assert np.array_equal(model_input(load_upright(path), 64, squash), from_file)
    assert model_input(pattern, 64).shape == (64, 64, 3)


def test_items_make_their_pixels(tmp_path, pattern):
    path = tmp_path / "p.png"
    pattern.save(path)
    bench = build_near_duplicate_set([path], 1, seed=3, transforms=("flip", "rotate90"))
    original, rotated, flipped = bench.items  # views in TRANSFORMS order, whatever order they were asked in
    assert original.source == path and flipped.source is flipped  # a file is read as indexing reads it
    assert np.array_equal(np.asarray(flipped.image()), np.asarray(pattern)[:, ::-1])
    assert rotated.image().size == (240, 320)
    assert np.array_equal(np.asarray(rotated.image()), np.asarray(make_view(pattern, "rotate90", 3, "p.png")))
