"""One image reader: indexing, thumbnails and the preview read a file the same way.

Each hostile case goes through all three paths (``read_photo``,
``cached_thumbnail``, ``read_preview``) and must be refused, or shown, alike;
a normal photo is the control on each path. Then the preview's own contract,
and the warning policy: no decode ever changes the process's warning filters.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image, ImageOps
from test_bad_input import (
    _CORRUPT_EXIF,
    animated_gif,
    app_warning_filters,
    bomb_png,
    cmyk_jpeg,
    finishes,
    gray16_png,
    mad,
    palette_png,
    quadrant_jpeg,
    truncated_jpeg,
    wide_image,
)

from clipdesk.imageio import ImageReadError, read_many, read_photo, read_preview, to_rgb
from clipdesk.thumbs import JPEG_QUALITY, cached_thumbnail

SIDE = 96
Read = Callable[[Path], tuple[tuple[int, int], np.ndarray]]


@pytest.fixture(params=["index", "thumbnail", "preview"])
def read(request, tmp_path) -> Read:
    """Read a file through one path: (the upright size it reports, its RGB pixels).

    The index path reports the photo's full size and a squashed model input
    (so quadrants stay quadrants); the others the fitted image they deliver.
    """
    cache = tmp_path / "thumbs"

    def through_index(path: Path):
        info = read_photo(path, 64, squash=True)
        return (info.width, info.height), info.pixels

    def through_thumbnail(path: Path):
        with Image.open(cached_thumbnail(str(path), SIDE, cache)) as im:
            return im.size, np.asarray(im.convert("RGB"))

    def through_preview(path: Path):
        im = read_preview(path, SIDE)
        assert im.mode == "RGB"
        return im.size, np.asarray(im)

    fn = {"index": through_index, "thumbnail": through_thumbnail, "preview": through_preview}[request.param]
    fn.kind = request.param
    return fn


def full_decode(path: Path) -> Image.Image:
    """What a viewer shows: the whole file decoded, upright, RGB."""
    with Image.open(path) as im:
        im.load()
        return to_rgb(ImageOps.exif_transpose(im))


def colour(px: np.ndarray, fy: float, fx: float) -> np.ndarray:
    """Mean colour of a small window at fractions (fy, fx) of the image."""
    h, w = px.shape[:2]
    y, x = int(h * fy), int(w * fx)
    r = max(1, min(h, w) // 16)
    return px[y - r : y + r, x - r : x + r].reshape(-1, 3).astype(float).mean(0)


def quadrants(px: np.ndarray) -> list[tuple[int, int, int]]:
    """The colour of each quadrant (top-left, top-right, bottom-left, bottom-right), rounded to 0/255."""
    return [tuple(int(round(c / 255)) * 255 for c in colour(px, fy, fx)) for fy, fx in
            ((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75))]


RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# -- every path: the control, then each hostile case ------------------------------


def test_normal_photo_passes_every_path(read, coco_images):
    src = coco_images[0]
    size, px = read(src)
    want = full_decode(src)
    if read.kind == "index":  # the full size, and a squashed model input
        assert size == want.size
        want = want.resize((64, 64), Image.Resampling.BICUBIC)
    else:
        assert max(size) == SIDE and size == (px.shape[1], px.shape[0])
        want = want.resize(size, Image.Resampling.LANCZOS)
    if read.kind == "thumbnail":  # stored as a JPEG: compare with the same loss
        buf = io.BytesIO()
        want.save(buf, "JPEG", quality=JPEG_QUALITY)
        want = Image.open(buf)
    assert mad(px, np.asarray(want)) < 3.0


def test_fifo_never_blocks(read, tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)  # no writer, ever
    refused = finishes(lambda: read(fifo))
    assert isinstance(refused, ImageReadError) and "not a regular file" in str(refused)


def test_control_a_plain_open_of_that_fifo_does_block(tmp_path):
    """What the readers avoid: ``open()`` of a FIFO waits for a writer, for ever."""
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def plain_read() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=plain_read, daemon=True)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # it cannot return without a writer, however long it is given
    with open(fifo, "wb"):  # be that writer, so the thread ends
        pass
    thread.join(10)
    assert not thread.is_alive() and got == [b""]


def test_decompression_bomb_refused(read, tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())  # 900 megapixels declared in a few hundred bytes
    with pytest.raises(ImageReadError, match="too large"):
        read(path)


def test_one_size_limit_for_every_path(read, tmp_path, monkeypatch):
    """Pillow's one limit, set by imageio: between it and twice it decoded silently, above refused."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the same rule, scaled down
    Image.new("RGB", (40, 40), "red").save(tmp_path / "big.png")  # 1600 px: in the band
    Image.new("RGB", (50, 50), "red").save(tmp_path / "huge.png")  # 2500 px: over twice
    with app_warning_filters():
        size, px = read(tmp_path / "big.png")
    assert size == (40, 40) and np.abs(colour(px, 0.5, 0.5) - RED).max() < 3
    with pytest.raises(ImageReadError, match="too large"):
        read(tmp_path / "huge.png")


def test_truncated_jpeg_refused(read, tmp_path, coco_images):
    truncated_jpeg(coco_images[0], tmp_path / "trunc.jpg")
    with pytest.raises(ImageReadError, match="truncated"):
        read(tmp_path / "trunc.jpg")


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_huge_dimensions_read_and_fitted(read, tmp_path, ext):
    wide_image(tmp_path / f"wide.{ext}")  # 30000 x 40, green
    size, px = read(tmp_path / f"wide.{ext}")
    assert size in ((30_000, 40), (SIDE, 1))
    assert np.abs(px.reshape(-1, 3).mean(0) - [0, 200, 0]).max() < 6


def test_folder_named_like_a_photo(read, tmp_path):
    (tmp_path / "album.jpg").mkdir()
    with pytest.raises(ImageReadError, match="is a folder"):
        read(tmp_path / "album.jpg")


def test_empty_file(read, tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty file"):
        read(tmp_path / "zero.jpg")


def test_non_image_with_jpg_extension(read, tmp_path):
    (tmp_path / "notes.jpg").write_bytes(b"shopping list: milk, eggs\n" * 20)
    with pytest.raises(ImageReadError, match="not an image"):
        read(tmp_path / "notes.jpg")


def test_eps_named_jpg_never_reaches_ghostscript(read, tmp_path, monkeypatch):
    path = tmp_path / "invoice.jpg"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 48\nshowpage\n%%EOF\n")
    with Image.open(path) as im:
        assert im.format == "EPS"  # control: Pillow alone would take it, and render it with gs
    calls = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a))
    with pytest.raises(ImageReadError, match="not an image"):
        read(path)
    assert calls == []


def test_vanished_file_is_an_os_error(read, tmp_path):
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "gone.jpg")


@pytest.mark.parametrize(("orientation", "upright", "want"), [
    (1, (640, 480), [RED, GREEN, BLUE, WHITE]),  # control: as stored
    # Clockwise: the stored top-left (red) goes top-right, bottom-left (blue) top-left.
    (6, (480, 640), [BLUE, RED, WHITE, GREEN]),
])
def test_exif_orientation_comes_out_upright(read, tmp_path, orientation, upright, want):
    quadrant_jpeg(tmp_path / "q.jpg", orientation=orientation)  # stored 640 x 480
    size, px = read(tmp_path / "q.jpg")
    fitted = (upright[0] * SIDE // max(upright), upright[1] * SIDE // max(upright))
    assert size in (upright, fitted)
    assert quadrants(px) == want


# -- read_preview's own contract ----------------------------------------------------


def test_preview_fits_and_never_enlarges(tmp_path):
    quadrant_jpeg(tmp_path / "a.jpg", size=(1600, 1200))
    Image.new("RGB", (40, 30), "red").save(tmp_path / "s.png")
    assert read_preview(tmp_path / "a.jpg", 128).size == (128, 96)
    assert read_preview(str(tmp_path / "s.png"), 256).size == (40, 30)
    with pytest.raises(ValueError, match="positive"):
        read_preview(tmp_path / "s.png", 0)


def test_preview_is_rgb_with_transparency_on_white(tmp_path):
    palette_png(tmp_path / "pal.png")  # left red, right fully transparent
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[:, 32:, 3] = 255  # blue, opaque on the right only
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    key = np.zeros((64, 64, 3), np.uint8)
    key[:, :32] = (255, 0, 0)  # red left; right black, which the tRNS chunk makes transparent
    Image.fromarray(key).save(tmp_path / "key.png", transparency=(0, 0, 0))
    for name, left, right in [("pal.png", RED, WHITE), ("a.png", WHITE, BLUE), ("key.png", RED, WHITE)]:
        im = read_preview(tmp_path / name, 64)
        assert im.mode == "RGB", name
        px = np.asarray(im)
        assert np.abs(colour(px, 0.5, 0.25) - left).max() <= 3, name
        assert np.abs(colour(px, 0.5, 0.75) - right).max() <= 3, name


def test_preview_of_16_bit_and_cmyk(tmp_path):
    gray16_png(tmp_path / "g16.png", top=65535)
    cmyk_jpeg(tmp_path / "cmyk.jpg")
    g16 = np.asarray(read_preview(tmp_path / "g16.png", 256)).astype(int)
    assert g16.shape == (64, 256, 3) and g16[32, 0, 0] <= 3 and g16[32, -1, 0] >= 250
    assert np.abs(np.asarray(read_preview(tmp_path / "cmyk.jpg", 64)).reshape(-1, 3).mean(0) - RED).max() < 8


def test_preview_multi_frame_shows_the_first(tmp_path, coco_images):
    animated_gif(tmp_path / "anim.gif")  # red, green, blue
    assert np.abs(np.asarray(read_preview(tmp_path / "anim.gif", 32)).reshape(-1, 3).mean(0) - RED).max() < 3
    first, second = Image.open(coco_images[0]), Image.open(coco_images[1])
    mpo = tmp_path / "phone.jpg"
    first.save(mpo, format="MPO", save_all=True, append_images=[second.resize(first.size)])
    shown = read_preview(mpo, 128)
    want = full_decode(coco_images[0]).resize(shown.size, Image.Resampling.LANCZOS)
    assert mad(np.asarray(shown), np.asarray(want)) < 4.0


def test_preview_decodes_jpeg_at_reduced_size_and_looks_the_same(coco_images, monkeypatch):
    from test_bad_input import spy_draft

    scales = spy_draft(monkeypatch)
    for src in coco_images[:6]:
        scales.clear()
        shown = read_preview(src, 96)
        with Image.open(src) as im:
            most = min(im.width // 96, im.height // 96)  # the largest reduction that still covers 96 x 96
        assert scales == [max(s for s in (1, 2, 4, 8) if s <= most)] and scales[0] >= 2
        want = full_decode(src).resize(shown.size, Image.Resampling.LANCZOS)
        assert mad(np.asarray(shown), np.asarray(want)) < 2.0  # the geometry exact, only the DCT scaling differs


def test_preview_of_a_real_rotated_photo(shared_data):
    rotated = []
    for path in sorted((shared_data / "imagenet_sample").glob("*.JPEG")):
        with Image.open(path) as im:
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                rotated.append(path)
    assert rotated, "the shared sample has a photo with EXIF orientation 6"
    for path in rotated:
        shown = read_preview(path, 160)
        want = full_decode(path)
        assert (shown.width >= shown.height) == (want.width >= want.height)
        want = want.resize(shown.size, Image.Resampling.LANCZOS)
        assert mad(np.asarray(shown), np.asarray(want)) < 4.0


# -- warnings: one policy, set at import, never changed by a decode -----------------


def noisy_files(tmp_path: Path) -> list[Path]:
    """Files Pillow warns about: corrupt EXIF it skips, and a size in the bomb warning band
    (with the limit lowered to 1000 pixels)."""
    paths = []
    for name, blob in _CORRUPT_EXIF.items():
        path = tmp_path / f"{name}.jpg"
        Image.new("RGB", (30, 20), "red").save(path, exif=blob)  # under the lowered limit
        paths.append(path)
    Image.new("RGB", (40, 40), "red").save(tmp_path / "band.png")
    return [*paths, tmp_path / "band.png"]


def test_control_those_files_do_warn(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in noisy_files(tmp_path):
            with Image.open(path) as im:
                im.getexif()
    kinds = {w.category for w in caught}
    assert UserWarning in kinds and Image.DecompressionBombWarning in kinds


def test_no_decode_changes_the_warning_filters(tmp_path, monkeypatch):
    """Thumbnails and previews decode on several threads at once; ``catch_warnings`` and
    ``simplefilter`` swap the process-wide filter list, so no decode path may call them."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    paths = noisy_files(tmp_path)
    with app_warning_filters():  # and any warning that escapes the policy fails a job
        _decode_everywhere_watching_the_filters(tmp_path, paths, monkeypatch)


def _decode_everywhere_watching_the_filters(tmp_path: Path, paths: list[Path], monkeypatch) -> None:
    calls: list[str] = []
    for name in ("catch_warnings", "simplefilter", "filterwarnings", "resetwarnings"):
        real = getattr(warnings, name)
        monkeypatch.setattr(warnings, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    with warnings.catch_warnings():
        pass
    assert calls == ["catch_warnings"]  # control: the watch sees a call
    calls.clear()
    before = list(warnings.filters)
    cache = tmp_path / "thumbs"
    jobs = [lambda p=p: read_photo(p, 16) for p in paths] + [lambda p=p: read_photo(p, None) for p in paths]
    jobs += [lambda p=p: read_preview(p, 24) for p in paths] + [lambda p=p: cached_thumbnail(str(p), 24, cache)
                                                                 for p in paths]
    jobs.append(lambda: read_many([str(p) for p in paths], 16))
    with ThreadPoolExecutor(4) as pool:
        for result in pool.map(lambda job: job(), jobs):
            assert result is not None
    assert calls == []
    assert warnings.filters == before


_POLICY_SCRIPT = textwrap.dedent("""
    import sys, warnings
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    from PIL import Image
    from clipdesk.imageio import read_photo, read_preview
    from clipdesk.thumbs import cached_thumbnail

    Image.MAX_IMAGE_PIXELS = 1000  # puts band.png in the warning band
    paths, cache = [Path(p) for p in sys.argv[2:]], Path(sys.argv[1])
    jobs = [lambda p=p: read_photo(p, 16) for p in paths] + [lambda p=p: read_preview(p, 24) for p in paths]
    jobs += [lambda p=p: cached_thumbnail(str(p), 24, cache) for p in paths]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: job(), jobs))  # -W error: any warning that escapes raises here
    try:  # clipdesk's own warnings are not silenced by that policy
        warnings.warn_explicit("own", UserWarning, "imageio.py", 1, module="clipdesk.imageio")
    except UserWarning:
        print("ok")
""")


def test_pillow_noise_is_silenced_in_a_real_process(tmp_path):
    """The policy as the app gets it, by importing imageio, with every other warning an error."""
    paths = noisy_files(tmp_path)
    run = subprocess.run([sys.executable, "-W", "error", "-c", _POLICY_SCRIPT, str(tmp_path / "thumbs"),
                          *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"
    assert len(list((tmp_path / "thumbs").rglob("*.jpg"))) == len(paths)
