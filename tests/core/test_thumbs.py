"""The on-disk thumbnail cache (no Qt)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdesk import thumbs
from clipdesk.imageio import ImageReadError
from clipdesk.thumbs import cached_thumbnail, thumbnail_cache_dir


def quadrant_jpeg(path: Path, orientation: int | None = None, size=(640, 480)) -> None:
    """Four flat quadrants (red, green / blue, white): any rotation shows."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = (255, 0, 0)
    arr[: h // 2, w // 2 :] = (0, 255, 0)
    arr[h // 2 :, : w // 2] = (0, 0, 255)
    arr[h // 2 :, w // 2 :] = (255, 255, 255)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(arr).save(path, quality=95, exif=exif)


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "thumbs"


def test_cache_dir_follows_clipdesk_home(clipdesk_home):
    assert thumbnail_cache_dir() == clipdesk_home.resolve() / "cache" / "thumbnails"


def test_thumbnail_fits_and_keeps_aspect(tmp_path, cache):
    quadrant_jpeg(tmp_path / "a.jpg", size=(1600, 1200))
    out = cached_thumbnail(str(tmp_path / "a.jpg"), 128, cache)
    assert out.suffix == ".jpg" and out.is_relative_to(cache)
    with Image.open(out) as im:
        assert im.size == (128, 96) and im.mode == "RGB"


def test_small_image_is_not_upscaled(tmp_path, cache):
    Image.new("RGB", (40, 30), "red").save(tmp_path / "s.png")
    with Image.open(cached_thumbnail(str(tmp_path / "s.png"), 256, cache)) as im:
        assert im.size == (40, 30)


def test_cache_hit_does_not_decode_again(tmp_path, cache, monkeypatch):
    quadrant_jpeg(tmp_path / "a.jpg")
    first = cached_thumbnail(str(tmp_path / "a.jpg"), 64, cache)
    before = first.stat().st_mtime_ns
    opens = []
    real_open = Image.open
    monkeypatch.setattr(thumbs.Image, "open", lambda *a, **k: opens.append(a) or real_open(*a, **k))
    again = cached_thumbnail(str(tmp_path / "a.jpg"), 64, cache)
    assert again == first and again.stat().st_mtime_ns == before
    assert opens == []
    # Another size is another entry.
    other = cached_thumbnail(str(tmp_path / "a.jpg"), 32, cache)
    assert other != first and len(opens) == 1


def test_changed_file_gets_a_new_thumbnail(tmp_path, cache):
    photo = tmp_path / "a.jpg"
    Image.new("RGB", (200, 100), "red").save(photo)
    old = cached_thumbnail(str(photo), 64, cache)
    Image.new("RGB", (100, 200), "blue").save(photo)
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a coarse-mtime filesystem
    new = cached_thumbnail(str(photo), 64, cache)
    assert new != old
    with Image.open(new) as im:
        assert im.size == (32, 64)
        r, g, b = im.convert("RGB").getpixel((16, 32))
        assert b > 200 and r < 50


def test_exif_rotation_is_applied(tmp_path, cache):
    quadrant_jpeg(tmp_path / "o6.jpg", orientation=6)  # stored 640x480, shown rotated clockwise
    with Image.open(cached_thumbnail(str(tmp_path / "o6.jpg"), 64, cache)) as im:
        assert im.size == (48, 64)
        px = np.asarray(im.convert("RGB"), dtype=int)
    # Clockwise: stored top-left (red) goes top-right, bottom-left (blue) top-left.
    for (y, x), want in {(8, 8): (0, 0, 255), (8, 40): (255, 0, 0), (56, 8): (255, 255, 255), (56, 40): (0, 255, 0)}.items():
        assert np.abs(px[y - 3 : y + 3, x - 3 : x + 3].reshape(-1, 3).mean(0) - want).max() < 20, (y, x)


def test_alpha_kept_as_png_and_opaque_alpha_as_jpeg(tmp_path, cache):
    Image.new("RGBA", (80, 40), (255, 0, 0, 100)).save(tmp_path / "t.png")
    Image.new("RGBA", (80, 40), (255, 0, 0, 255)).save(tmp_path / "opaque.png")
    see_through = cached_thumbnail(str(tmp_path / "t.png"), 32, cache)
    assert see_through.suffix == ".png"
    with Image.open(see_through) as im:
        assert im.mode == "RGBA" and im.getpixel((4, 4))[3] == 100
    assert cached_thumbnail(str(tmp_path / "opaque.png"), 32, cache).suffix == ".jpg"
    # A hit finds the PNG too.
    assert cached_thumbnail(str(tmp_path / "t.png"), 32, cache) == see_through


def test_sixteen_bit_and_palette_images(tmp_path, cache):
    Image.fromarray(np.full((20, 30), 40000, np.uint16)).save(tmp_path / "g16.png")
    Image.new("P", (30, 20), 3).save(tmp_path / "pal.gif")
    for name in ("g16.png", "pal.gif"):
        with Image.open(cached_thumbnail(str(tmp_path / name), 16, cache)) as im:
            assert im.mode == "RGB" and im.size == (16, 11)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"not an image at all", "not an image"), (None, "cannot decode")],
)
def test_broken_files_raise_a_clear_error(tmp_path, cache, content, reason):
    bad = tmp_path / "bad.jpg"
    if content is None:  # a truncated JPEG
        quadrant_jpeg(tmp_path / "good.jpg")
        content = (tmp_path / "good.jpg").read_bytes()[:600]
    bad.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason):
        cached_thumbnail(str(bad), 64, cache)
    assert not cache.exists()  # nothing half-written


def test_missing_file_and_folder(tmp_path, cache):
    with pytest.raises(FileNotFoundError):
        cached_thumbnail(str(tmp_path / "gone.jpg"), 64, cache)
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageReadError, match="is a folder"):
        cached_thumbnail(str(tmp_path / "dir.jpg"), 64, cache)


def test_fifo_refused_without_blocking_and_nothing_cached(tmp_path, cache):
    from test_bad_input import finishes

    os.mkfifo(tmp_path / "x.jpg")  # no writer: a plain open() would block forever
    refused = finishes(lambda: cached_thumbnail(str(tmp_path / "x.jpg"), 64, cache))
    assert isinstance(refused, ImageReadError) and "not a regular file" in str(refused)
    assert not cache.exists()


def test_imageio_size_limit_applies(tmp_path, cache, monkeypatch):
    """The thumbnail decode is imageio's: its decompression-bomb limit, read at decode time."""
    Image.new("RGB", (50, 50), "red").save(tmp_path / "big.png")
    assert cached_thumbnail(str(tmp_path / "big.png"), 16, cache).is_file()  # control: a normal image
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 2500 px is now over twice the limit
    with pytest.raises(ImageReadError, match="too large"):
        cached_thumbnail(str(tmp_path / "big.png"), 32, cache)


def test_photo_tree_is_untouched_and_non_utf8_names_work(tmp_path, cache):
    photos = tmp_path / "photos"
    photos.mkdir()
    quadrant_jpeg(photos / "a.jpg")
    odd = os.fsdecode(os.fsencode(str(photos)) + b"/caf\xe9.jpg")  # not valid UTF-8
    quadrant_jpeg(Path(odd))
    os.chmod(photos / "a.jpg", 0o444)
    before = tree_state(photos)
    out_a = cached_thumbnail(str(photos / "a.jpg"), 64, cache)
    out_odd = cached_thumbnail(odd, 64, cache)
    assert out_a != out_odd and out_odd.is_relative_to(cache)
    assert tree_state(photos) == before
    # No temp files left behind in the cache either.
    assert sorted(p.name.startswith(".tmp-") for p in cache.rglob("*") if p.is_file()) == [False, False]
