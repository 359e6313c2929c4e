"""Hostile and unusual input: every file is either indexed or reported, the
scan always finishes, and no photo is ever written to; inline and with decode
worker processes, and through the thumbnail and preview paths as well.

All odd files are made here, in tmp_path; the good ones are copies of the
shared COCO photos.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import threading
import warnings
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, JpegImagePlugin
from PIL.TiffImagePlugin import IFDRational
from sqlalchemy import select

from clipdesk import decode_pool, imageio, indexer
from clipdesk.config import CoreConfig
from clipdesk.imageio import HEIF_AVAILABLE, ImageReadError, read_many, read_photo, read_preview, to_rgb
from clipdesk.indexer import index
from clipdesk.paths import LIBRARY_MARKER
from clipdesk.scanner import FileEntry
from clipdesk.store.models import Embedding, Photo, ScanError
from clipdesk.thumbs import cached_thumbnail

INLINE = CoreConfig(decode_workers=0)
NON_UTF8 = b"caf\xe9.jpg"  # Latin-1 "café": not valid UTF-8


# -- harness ------------------------------------------------------------------


def finishes(fn: Callable[[], object], deadline: float = 10.0) -> object:
    """``fn()``'s result or the exception it raised, run on a thread that must end by ``deadline``.

    The assertion that nothing blocks (a FIFO opened without a writer never
    returns): the join is the test, not a sleep. The thread is a daemon, so a
    hang fails this test without holding up the rest of the run.
    """
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test to inspect
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(deadline)
    assert not thread.is_alive(), "the call blocked"
    return out[0]


@contextmanager
def app_warning_filters():
    """The warning filters a running app has, on top of "every other warning is an error".

    pytest restores the filters around collection and around each test, so
    those imageio installed at import are gone inside a test; this puts them
    back for one block (and the subprocess test checks the real import).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imageio._quiet_pillow_warnings()
        yield


# -- making odd files ----------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid-looking 1-bit PNG header declaring ``width x height`` pixels, a few hundred bytes in all."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(16)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def gray16_png(path: Path, top: int = 16383) -> np.ndarray:
    """A horizontal 16-bit gradient 0..top: any 8-bit clipping turns most of it white."""
    arr = np.tile(np.linspace(0, top, 256).astype(np.uint16), (64, 1))
    im = Image.fromarray(arr)
    assert im.mode == "I;16"
    im.save(path)
    with Image.open(path) as back:
        assert back.mode.startswith("I")  # really stored and read as 16-bit
    return arr


def cmyk_jpeg(path: Path) -> None:
    Image.new("CMYK", (120, 90), (0, 255, 255, 0)).save(path, quality=95)  # pure red


def palette_png(path: Path) -> None:
    """Left half palette index 1 (red), right half index 0, which is fully transparent."""
    im = Image.new("P", (64, 64), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    im.paste(1, (0, 0, 32, 64))
    im.save(path, transparency=0)


def animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (48, 48), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=0)


def wide_image(path: Path, size=(30_000, 40)) -> None:
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[:, :, 1] = 200  # green everywhere
    Image.fromarray(arr).save(path)


def truncated_jpeg(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])


def quadrant_jpeg(path: Path, orientation: int | None = None, size=(640, 480), exif: Image.Exif | None = None) -> None:
    """Four flat coloured quadrants (red, green / blue, white): any rotation or flip shows."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = (255, 0, 0)
    arr[: h // 2, w // 2 :] = (0, 255, 0)
    arr[h // 2 :, : w // 2] = (0, 0, 255)
    arr[h // 2 :, w // 2 :] = (255, 255, 255)
    exif = exif if exif is not None else Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(arr).save(path, quality=95, exif=exif)


def reference_input(path: Path, target: int) -> np.ndarray:
    """What a full-resolution decode gives: upright, centre square, bicubic."""
    with Image.open(path) as im:
        im.load()
        rgb = to_rgb(ImageOps.exif_transpose(im))
    w, h = rgb.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return np.asarray(rgb.resize((target, target), Image.Resampling.BICUBIC, box=box), dtype=np.uint8)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# -- read_photo: formats and modes ----------------------------------------------


def test_info_fields_and_content_hash(tmp_path, coco_images):
    src = coco_images[0]
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    shutil.copy(src, a)
    shutil.copy(src, b)
    os.utime(b, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    ia, ib = read_photo(a, 64), read_photo(b, None)
    data = src.read_bytes()
    assert ia.content_hash == ib.content_hash == hashlib.blake2b(data, digest_size=20).hexdigest()
    assert (ia.size, ib.size) == (len(data), len(data))
    assert ia.mtime_ns == a.stat().st_mtime_ns and ib.mtime_ns == 1_500_000_000_000_000_000
    with Image.open(src) as im:
        assert (ia.width, ia.height, ia.format) == (*im.size, "JPEG")
    assert ia.pixels.shape == (64, 64, 3) and ia.pixels.dtype == np.uint8
    assert ib.pixels is None
    b.write_bytes(data + b"\x00")  # trailing junk: still decodes, different bytes
    assert read_photo(b, None).content_hash != ia.content_hash


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    gray16_png(tmp_path / "g16.png", top=16383)  # only the darkest quarter of the 16-bit range
    info = read_photo(tmp_path / "g16.png", 64, squash=True)
    px = info.pixels.astype(int)
    assert info.format == "PNG" and (info.width, info.height) == (256, 64)
    assert (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all()  # still gray
    row = px[32, :, 0]
    assert row.max() <= 70  # 16383 / 65535 * 255 = 64; clipping would give 255
    assert row[0] <= 2 and row[-1] >= 58
    assert (np.diff(row) >= 0).all()  # the gradient survives, monotonic
    full = tmp_path / "full.png"
    gray16_png(full, top=65535)
    row = read_photo(full, 64, squash=True).pixels[32, :, 0].astype(int)
    assert row[0] <= 3 and row[-1] >= 250 and 100 < row.mean() < 155


def test_cmyk_jpeg_colours(tmp_path):
    cmyk_jpeg(tmp_path / "cmyk.jpg")
    info = read_photo(tmp_path / "cmyk.jpg", 32)
    assert info.format == "JPEG" and (info.width, info.height) == (120, 90)
    assert np.abs(info.pixels.reshape(-1, 3).mean(0) - [255, 0, 0]).max() < 8


def test_palette_transparency_on_white(tmp_path):
    palette_png(tmp_path / "pal.png")
    px = read_photo(tmp_path / "pal.png", 64).pixels.astype(int)
    assert np.abs(px[10:54, 4:28] - [255, 0, 0]).max() <= 2  # opaque red stays red
    assert np.abs(px[10:54, 36:60] - [255, 255, 255]).max() <= 2  # transparent is white, not black


def test_rgba_on_white(tmp_path):
    arr = np.zeros((32, 32, 4), np.uint8)
    arr[..., 2] = 255  # blue
    arr[:, 16:, 3] = 255  # right half opaque
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    px = read_photo(tmp_path / "a.png", 32).pixels.astype(int)
    assert np.abs(px[:, :12] - 255).max() <= 2
    assert np.abs(px[:, 20:] - [0, 0, 255]).max() <= 2


def test_animated_gif_first_frame_and_frame_count(tmp_path):
    animated_gif(tmp_path / "anim.gif")
    info = read_photo(tmp_path / "anim.gif", 32)
    assert (info.format, info.frames, info.width, info.height) == ("GIF", 3, 48, 48)
    assert np.abs(info.pixels.reshape(-1, 3).mean(0) - [255, 0, 0]).max() < 3


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_extreme_aspect_ratio_is_read(tmp_path, ext):
    path = tmp_path / f"wide.{ext}"
    wide_image(path)
    info = read_photo(path, 64)
    assert (info.width, info.height) == (30_000, 40)
    assert info.pixels.shape == (64, 64, 3)
    assert np.abs(info.pixels.reshape(-1, 3).mean(0) - [0, 200, 0]).max() < 6
    tall = tmp_path / f"tall.{ext}"
    wide_image(tall, size=(40, 30_000))
    assert (read_photo(tall, 64).width, read_photo(tall, None).height) == (40, 30_000)


def test_decompression_bomb_refused_quickly(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    assert path.stat().st_size < 1000  # 900 megapixels declared in under 1 kB
    for target in (64, None):
        with pytest.raises(ImageReadError, match="too large"):
            read_photo(path, target)


def test_size_limits_warn_band_and_refusal(tmp_path, monkeypatch):
    """Between the limit and twice it: decoded silently; above: refused."""
    assert Image.MAX_IMAGE_PIXELS == 200_000_000  # a 200 MP panorama is a photo
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the same rule, scaled down
    Image.new("RGB", (40, 40), "red").save(tmp_path / "big.png")  # 1600 px: in the band
    Image.new("RGB", (50, 50), "red").save(tmp_path / "huge.png")  # 2500 px: over twice
    with app_warning_filters():  # the bomb warning must not escape (or abort) the read
        assert read_photo(tmp_path / "big.png", 16).pixels.shape == (16, 16, 3)
    with pytest.raises(ImageReadError, match="too large"):
        read_photo(tmp_path / "huge.png", 16)


def test_truncated_zero_and_garbage(tmp_path, coco_images):
    truncated_jpeg(coco_images[0], tmp_path / "trunc.jpg")
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"this is not a JPEG at all\n" * 40)
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    for target in (64, None):
        with pytest.raises(ImageReadError, match="truncated"):
            read_photo(tmp_path / "trunc.jpg", target)
        with pytest.raises(ImageReadError, match="empty file"):
            read_photo(tmp_path / "zero.jpg", target)
        with pytest.raises(ImageReadError, match="not an image"):
            read_photo(tmp_path / "text.jpg", target)
        with pytest.raises(ImageReadError):
            read_photo(tmp_path / "fake.png", target)


@pytest.mark.timeout(20)
def test_fifo_is_not_opened_for_a_blocking_read(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_photo(fifo, 64)
    [(path, info, err)] = read_many([str(fifo)], 64)
    assert info is None and "not a regular file" in err


def test_read_many_reports_and_never_raises(tmp_path, coco_images):
    good = tmp_path / "good.jpg"
    shutil.copy(coco_images[1], good)
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "zero.jpg").write_bytes(b"")
    paths = [str(tmp_path / "gone.jpg"), str(tmp_path / "dir.jpg"), str(good), str(tmp_path / "zero.jpg")]
    out = read_many(paths, 32)
    assert [p for p, _, _ in out] == paths
    assert out[0][1] is None and out[0][2] == "vanished during the scan"
    assert out[1][1] is None and out[1][2] == "is a folder, not a file"
    assert out[2][2] is None and out[2][1].pixels.shape == (32, 32, 3)
    assert out[3][2] == "empty file (0 bytes)"


def test_read_many_turns_any_failure_into_a_reason(tmp_path, coco_images, monkeypatch):
    good = tmp_path / "good.jpg"
    shutil.copy(coco_images[0], good)
    locked, odd = str(tmp_path / "locked.jpg"), str(tmp_path / "odd.jpg")
    shutil.copy(coco_images[1], locked)
    shutil.copy(coco_images[2], odd)
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_open(path, flags, *args, **kwargs)

    real_decode = imageio._decode

    def fake_decode(data, *args):
        if data == Path(odd).read_bytes():
            raise RuntimeError("decoder bug")
        return real_decode(data, *args)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(imageio, "_decode", fake_decode)
    out = {p: err for p, _, err in read_many([locked, odd, str(good)], 16)}
    assert out == {locked: "cannot read: Permission denied", odd: "unexpected RuntimeError: decoder bug", str(good): None}


# -- read_photo: EXIF -----------------------------------------------------------


def gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D Mark IV\x00"
    exif[0x0132] = "2020:01:01 00:00:00"  # file change time: less preferred than the original
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 12:34:56"
    exif.get_ifd(0x8825).update(
        {
            1: "S",
            2: (IFDRational(33, 1), IFDRational(51, 1), IFDRational(3564, 100)),
            3: "W",
            4: (IFDRational(70, 1), IFDRational(39, 1), IFDRational(2106, 100)),
        }
    )
    return exif


def test_exif_date_camera_gps(tmp_path):
    from datetime import datetime

    quadrant_jpeg(tmp_path / "e.jpg", exif=gps_exif(), size=(80, 60))
    info = read_photo(tmp_path / "e.jpg", None)
    assert info.taken_at == datetime(2021, 7, 4, 12, 34, 56)
    assert (info.camera_make, info.camera_model) == ("Canon", "Canon EOS 5D Mark IV")
    assert info.gps_lat == pytest.approx(-(33 + 51 / 60 + 35.64 / 3600), abs=1e-6)  # Sydney
    assert info.gps_lon == pytest.approx(-(70 + 39 / 60 + 21.06 / 3600), abs=1e-6)  # (west)


def test_exif_fallbacks_and_nonsense(tmp_path):
    from datetime import datetime

    exif = Image.Exif()
    exif[0x0132] = "2019:02:03 04:05:06"  # only the plain DateTime
    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"  # a camera with no clock set
    exif.get_ifd(0x8825).update(
        {
            1: "N",
            2: (IFDRational(100, 1), IFDRational(0, 1), IFDRational(0, 1)),  # latitude over 90
            3: "E",
            4: (IFDRational(1, 0), IFDRational(0, 1), IFDRational(0, 1)),  # zero denominator
        }
    )
    quadrant_jpeg(tmp_path / "e.jpg", exif=exif, size=(80, 60))
    info = read_photo(tmp_path / "e.jpg", 32)
    assert info.taken_at == datetime(2019, 2, 3, 4, 5, 6)
    assert (info.gps_lat, info.gps_lon) == (None, None)
    assert (info.camera_make, info.camera_model) == (None, None)


_CORRUPT_EXIF = {
    "truncated-ifd": b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01\x0f",
    "offset-past-end": b"Exif\x00\x00II\x2a\x00\xff\xff\xff\x7f",
    "bad-byte-order": b"Exif\x00\x00XX\x2a\x00\x08\x00\x00\x00",
    "huge-entry-count": b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\xff\xff" + b"\x00" * 40,
    "sub-ifd-pointer-past-end": b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\x01\x00"
    + struct.pack("<HHII", 0x8769, 4, 1, 0x7FFFFFFF)
    + b"\x00" * 4,
    "orientation-as-text": b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\x01\x00"
    + struct.pack("<HHII", 0x0112, 2, 4, 0x00363636)
    + b"\x00" * 4,
}


@pytest.mark.parametrize("blob", list(_CORRUPT_EXIF.values()), ids=list(_CORRUPT_EXIF))
def test_corrupt_exif_loses_metadata_not_the_photo(tmp_path, blob):
    path = tmp_path / "c.jpg"
    Image.new("RGB", (64, 48), "red").save(path, exif=blob)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        imageio._quiet_pillow_warnings()  # as at import, which pytest's own filters undo
        info = read_photo(path, 16)
    assert [str(w.message) for w in caught] == []  # Pillow's "Corrupt EXIF" noise stays inside
    assert (info.width, info.height, info.taken_at, info.gps_lat) == (64, 48, None, None)
    assert np.abs(info.pixels.reshape(-1, 3).mean(0) - [255, 0, 0]).max() < 3


def test_no_exif_at_all(tmp_path):
    Image.new("RGB", (20, 10), "gray").save(tmp_path / "plain.png")
    info = read_photo(tmp_path / "plain.png", 16)
    assert (info.taken_at, info.camera_make, info.gps_lat, info.frames) == (None, None, None, 1)


def test_exif_orientation_6_rotates_pixels_and_swaps_size(tmp_path):
    quadrant_jpeg(tmp_path / "o6.jpg", orientation=6)  # stored 640x480, shown rotated 90 deg clockwise
    info = read_photo(tmp_path / "o6.jpg", 64, squash=True)
    assert (info.width, info.height) == (480, 640)
    px = info.pixels.astype(int)

    def colour(y, x):
        return px[y - 4 : y + 4, x - 4 : x + 4].reshape(-1, 3).mean(0)

    # Clockwise: the stored top-left (red) goes top-right, bottom-left (blue) top-left.
    for (y, x), want in {(16, 16): (0, 0, 255), (16, 48): (255, 0, 0), (48, 16): (255, 255, 255), (48, 48): (0, 255, 0)}.items():
        assert np.abs(colour(y, x) - want).max() < 12, ((y, x), colour(y, x), want)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("squash", [False, True])
def test_every_orientation_matches_full_decode(tmp_path, orientation, squash):
    path = tmp_path / "o.jpg"
    quadrant_jpeg(path, orientation=orientation, size=(640, 400))
    info = read_photo(path, 48, squash=squash)
    upright = (400, 640) if orientation >= 5 else (640, 400)
    assert (info.width, info.height) == upright
    with Image.open(path) as im:
        im.load()
        rgb = to_rgb(ImageOps.exif_transpose(im))
    if squash:
        want = np.asarray(rgb.resize((48, 48), Image.Resampling.BICUBIC), dtype=np.uint8)
    else:
        want = reference_input(path, 48)
    assert mad(info.pixels, want) < 3.0


def test_real_photo_with_orientation_tag(shared_data):
    rotated = [p for p in sorted((shared_data / "imagenet_sample").glob("*.JPEG")) if _orientation(p) in (5, 6, 7, 8)]
    assert rotated, "the shared sample has a photo with EXIF orientation 6"
    for path in rotated:
        info = read_photo(path, 64)
        with Image.open(path) as im:
            assert (info.width, info.height) == (im.height, im.width)
        assert mad(info.pixels, reference_input(path, 64)) < 4.0


def _orientation(path: Path) -> int:
    with Image.open(path) as im:
        return im.getexif().get(0x0112, 1)


# -- draft (reduced) decode ------------------------------------------------------


@pytest.mark.parametrize("target", [64, 112, 224])
def test_draft_decode_looks_like_full_decode(coco_images, shared_data, target):
    paths = coco_images[::12] + sorted((shared_data / "imagenet_sample").glob("*.JPEG"))[::100]
    diffs = [mad(read_photo(p, target).pixels, reference_input(p, target)) for p in paths]
    assert len(diffs) >= 25
    # The geometry is exact (same centre square), only the DCT scaling differs.
    assert np.mean(diffs) < 2.0, diffs
    assert max(diffs) < 6.0, diffs


def spy_draft(monkeypatch) -> list:
    """Record the DCT scale of every reduced-size JPEG decode (None where draft was refused)."""
    scales: list = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        out = real_draft(self, mode, size)
        scales.append(self.decoderconfig[0] if out else None)
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return scales


def test_draft_is_used_for_jpeg_and_mpo(tmp_path, coco_images, monkeypatch):
    scales = spy_draft(monkeypatch)
    first, second = Image.open(coco_images[0]), Image.open(coco_images[1])
    mpo = tmp_path / "phone.jpg"  # phones write multi-picture JPEGs; Pillow calls them MPO
    first.save(mpo, format="MPO", save_all=True, append_images=[second.resize(first.size)])
    info = read_photo(mpo, 64)
    assert (info.format, info.frames) == ("MPO", 2)
    assert scales and scales[-1] >= 4  # 640x4xx at 64 px: a 1/4 or 1/8 decode
    assert mad(info.pixels, reference_input(coco_images[0], 64)) < 3.0  # the first picture
    scales.clear()
    read_photo(coco_images[0], 64)
    assert scales and scales[-1] >= 4


# -- a whole hostile tree through the real indexer --------------------------------


@pytest.fixture
def hostile_tree(tmp_path, coco_images):
    """A photo folder holding every kind of trouble, plus a few good photos.

    Returns (root, good, bad, ignored): good maps path -> (width, height,
    frames), bad maps path -> a regex its ScanError reason must match.
    """
    root = tmp_path / "photos"
    root.mkdir()
    good: dict[str, tuple[int, int, int]] = {}
    bad: dict[str, str] = {}
    ignored: list[str] = []

    def copy_good(src: Path, dst: Path) -> None:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        with Image.open(src) as im:
            good[str(dst)] = (*im.size, 1)

    copy_good(coco_images[0], root / "good1.jpg")
    copy_good(coco_images[1], root / "2019" / "good2.JPG")
    copy_good(coco_images[2], root / "album.jpg" / "inner.jpg")  # a folder named like a photo
    name = os.fsdecode(os.fsencode(root) + b"/" + NON_UTF8)
    copy_good(coco_images[3], Path(name))

    gray16_png(root / "gray16.png")
    good[str(root / "gray16.png")] = (256, 64, 1)
    cmyk_jpeg(root / "cmyk.jpg")
    good[str(root / "cmyk.jpg")] = (120, 90, 1)
    palette_png(root / "palette.png")
    good[str(root / "palette.png")] = (64, 64, 1)
    animated_gif(root / "anim.gif")
    good[str(root / "anim.gif")] = (48, 48, 3)
    wide_image(root / "panorama.png")
    good[str(root / "panorama.png")] = (30_000, 40, 1)
    quadrant_jpeg(root / "rotated.jpg", orientation=6)
    good[str(root / "rotated.jpg")] = (480, 640, 1)

    truncated_jpeg(coco_images[4], root / "truncated.jpg")
    bad[str(root / "truncated.jpg")] = "truncated"
    (root / "zero.jpg").write_bytes(b"")
    bad[str(root / "zero.jpg")] = "empty file"
    (root / "notes.jpg").write_bytes(b"shopping list: milk, eggs\n" * 20)
    bad[str(root / "notes.jpg")] = "not an image"
    (root / "bomb.png").write_bytes(bomb_png())
    bad[str(root / "bomb.png")] = "too large"
    os.mkfifo(root / "x.jpg")
    bad[str(root / "x.jpg")] = "not a regular file"
    os.symlink(root / "nowhere.jpg", root / "broken.jpg")
    bad[str(root / "broken.jpg")] = "broken symbolic link"
    os.symlink("..", root / "2019" / "loop")  # 2019/loop -> photos/: a cycle

    for hidden in (root / ".thumbnails" / "t.jpg", root / "2019" / ".hidden.jpg"):
        hidden.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(coco_images[5], hidden)
        ignored.append(str(hidden))
    libdir = root / "old-library"
    libdir.mkdir()
    (libdir / LIBRARY_MARKER).write_text("")
    shutil.copy(coco_images[6], libdir / "in-library.jpg")
    ignored.append(str(libdir / "in-library.jpg"))
    return root, good, bad, ignored


def tree_state(root: Path) -> dict[str, tuple]:
    """Every entry under root: content hash, size and mtime of files, targets of links."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                state[path] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    state[path] = ("file", hashlib.sha256(fh.read()).hexdigest(), st.st_size, st.st_mtime_ns, st.st_mode)
            else:  # folders and the FIFO: never opened here either
                state[path] = (stat.S_IFMT(st.st_mode), st.st_mode)
    return state


def decoding_with(workers: int, monkeypatch) -> tuple[CoreConfig, list[int]]:
    """A config decoding in ``workers`` processes even for a tree this small, and the worker
    counts the indexer actually passed to the decode pool (the proof it did)."""
    # The indexer decodes small batches inline whatever the config says.
    monkeypatch.setattr(indexer, "INLINE_BELOW", 0)
    used: list[int] = []
    real_decode = decode_pool.decode

    def spy(paths, target, squash, workers, *args, **kwargs):
        used.append(workers)
        return real_decode(paths, target, squash, workers, *args, **kwargs)

    monkeypatch.setattr(decode_pool, "decode", spy)
    return CoreConfig(decode_workers=workers), used


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 2])
def test_hostile_tree_is_indexed_or_reported(library, tiny_engine, hostile_tree, monkeypatch, workers):
    root, good, bad, ignored = hostile_tree
    config, used = decoding_with(workers, monkeypatch)
    vanishing = root / "vanishing.jpg"
    quadrant_jpeg(vanishing, size=(64, 48))
    # Walked as a photo, then a FIFO by the time it is decoded: only the
    # decoder (in a worker process, when there are workers) can refuse it.
    swapped = root / "swapped.jpg"
    quadrant_jpeg(swapped, size=(64, 48))
    bad = {**bad, str(swapped): "not a regular file"}

    real_walk = indexer.walk

    def walk_then_change(*args, **kwargs):  # files change between the walk and their decode
        for item in real_walk(*args, **kwargs):
            yield item
            if item.path == str(vanishing):
                vanishing.unlink()
            elif item.path == str(swapped) and isinstance(item, FileEntry):
                swapped.unlink()
                os.mkfifo(swapped)  # no writer, ever

    monkeypatch.setattr(indexer, "walk", walk_then_change)
    report = index(library, [root], tiny_engine, config)
    assert used[0] == workers

    assert not report.cancelled
    assert report.new == len(good)
    assert report.embedded == len(good)
    with library.session() as s:
        photos = {p.path: p for p in s.scalars(select(Photo))}
        embedded = {e.photo_id: e for e in s.scalars(select(Embedding))}
        errors = {e.path: e.reason for e in s.scalars(select(ScanError))}
    assert set(photos) == set(good)
    for path, (w, h, frames) in good.items():
        photo = photos[path]
        assert (photo.width, photo.height, photo.frames) == (w, h, frames), path
        emb = embedded[photo.id]
        assert emb.model_key == tiny_engine.key and emb.content_hash == photo.content_hash
        assert emb.dim == tiny_engine.dim and len(emb.vector) == 2 * emb.dim
        assert photo.missing_since is None
    # The Latin-1 name round-trips byte for byte and can be opened again.
    (latin,) = [p for p in photos if os.fsencode(p).endswith(b"/" + NON_UTF8)]
    assert os.fsencode(latin) == os.fsencode(root) + b"/" + NON_UTF8
    assert read_photo(latin, None).content_hash == photos[latin].content_hash
    # The folder named album.jpg is walked, never itself an error.
    assert str(root / "album.jpg") not in errors
    for path, pattern in bad.items():
        assert path in errors, path
        assert re.search(pattern, errors[path]), (path, errors[path])
    # The vanished file: either reported as such, or simply not there.
    assert str(vanishing) not in photos
    assert set(errors) - set(bad) <= {str(vanishing)}
    if str(vanishing) in errors:
        assert "vanished" in errors[str(vanishing)]
    for path in ignored:
        assert path not in photos and path not in errors
    assert report.errors == len(errors)

    # A second scan changes nothing and re-embeds nothing.
    again = index(library, [root], tiny_engine, config)
    assert (again.new, again.changed, again.embedded, again.unchanged) == (0, 0, 0, len(good))
    with library.session() as s:
        assert set(s.scalars(select(Photo.path))) == set(good)
        assert set(s.scalars(select(ScanError.path))) == set(bad)


def test_non_utf8_name_error_then_fixed(library, tiny_engine, tmp_path, coco_images):
    root = tmp_path / "photos"
    root.mkdir()
    raw = os.fsencode(root) + b"/d\xe9fectueux.jpg"
    name = os.fsdecode(raw)
    truncated_jpeg(coco_images[0], Path(name))
    report = index(library, [root], tiny_engine, INLINE)
    assert (report.errors, report.new) == (1, 0)
    with library.session() as s:
        (error,) = s.scalars(select(ScanError))
        assert os.fsencode(error.path) == raw and "truncated" in error.reason
    shutil.copy(coco_images[0], name)  # repaired
    report = index(library, [root], tiny_engine, INLINE)
    assert (report.errors, report.new, report.embedded) == (0, 1, 1)
    with library.session() as s:
        assert list(s.scalars(select(ScanError))) == []
        (photo,) = s.scalars(select(Photo))
        assert os.fsencode(photo.path) == raw
    # Searching code gets the path back as str and can open the file with it.
    assert read_photo(photo.path, None).content_hash == photo.content_hash


@pytest.mark.skipif(not HEIF_AVAILABLE, reason="pillow-heif (optional) not installed")
@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heif_and_avif_read_as_a_viewer_shows_them(tmp_path, fmt):
    path = tmp_path / f"q.{fmt.lower()}"
    arr = np.asarray(Image.open(_quadrants(tmp_path)))
    exif = Image.Exif()
    exif[0x0112] = 6
    try:
        Image.fromarray(arr).save(path, format=fmt, exif=exif, quality=95)
    except (KeyError, OSError, ValueError) as exc:  # a build without this encoder
        pytest.skip(f"cannot encode {fmt} here: {exc}")
    info = read_photo(path, 48, squash=True)
    with Image.open(path) as im:
        im.load()
        shown = to_rgb(ImageOps.exif_transpose(im))
    assert (info.width, info.height) == shown.size
    want = np.asarray(shown.resize((48, 48), Image.Resampling.BICUBIC))
    assert mad(info.pixels, want) < 6.0


def _quadrants(tmp_path: Path) -> Path:
    path = tmp_path / "quadrants.png"
    arr = np.zeros((96, 128, 3), np.uint8)
    arr[:48, :64] = (255, 0, 0)
    arr[:48, 64:] = (0, 255, 0)
    arr[48:, :64] = (0, 0, 255)
    arr[48:, 64:] = (255, 255, 255)
    Image.fromarray(arr).save(path)
    return path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 2])
def test_indexing_never_modifies_the_tree(library, tiny_engine, hostile_tree, monkeypatch, workers):
    root = hostile_tree[0]
    config, used = decoding_with(workers, monkeypatch)
    before = tree_state(root)
    assert len(before) > 20
    index(library, [root], tiny_engine, config)
    index(library, [root], tiny_engine, config)
    assert used[0] == workers
    assert tree_state(root) == before  # same entries, bytes, sizes, mtimes, modes: nothing added


def _fitted(size: tuple[int, int], side: int) -> tuple[float, float]:
    scale = min(1.0, side / max(size))
    return size[0] * scale, size[1] * scale


@pytest.mark.timeout(120)
@pytest.mark.parametrize("view", ["thumbnail", "preview"])
def test_hostile_tree_through_thumbnails_and_previews(hostile_tree, tmp_path, view):
    """Every file of the tree, as the grid and the preview ask for it: the good ones shown
    upright and fitted, the bad ones refused with the indexer's reasons, and none blocks."""
    root, good, bad, ignored = hostile_tree
    side, cache = 96, tmp_path / "thumbs"

    def show(path: str) -> Image.Image:
        if view == "preview":
            return read_preview(path, side)
        with Image.open(cached_thumbnail(path, side, cache)) as im:
            im.load()
            return im

    before = tree_state(root)
    for path, (w, h, _frames) in {**good, **{p: (0, 0, 0) for p in ignored}}.items():
        if path in ignored:  # hidden or in a library: skipped by the walk, still photos
            with Image.open(path) as im:
                w, h = im.size
        shown = finishes(lambda path=path: show(path))
        assert isinstance(shown, Image.Image), (path, shown)
        assert view == "thumbnail" or shown.mode == "RGB"
        fw, fh = _fitted((w, h), side)
        assert abs(shown.width - fw) <= 1 and abs(shown.height - fh) <= 1, (path, shown.size, (w, h))
    for path, pattern in {**bad, str(root / "album.jpg"): "is a folder"}.items():
        refused = finishes(lambda path=path: show(path))
        if "broken symbolic link" in pattern:
            assert isinstance(refused, FileNotFoundError), (path, refused)
        else:
            assert isinstance(refused, ImageReadError), (path, refused)
            assert re.search(pattern, str(refused)), (path, str(refused))
    assert tree_state(root) == before


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@pytest.mark.timeout(120)
def test_photos_are_only_ever_opened_read_only(library, tiny_engine, hostile_tree, monkeypatch):
    # Inline decoding only: the watch is on this process's open(); the modes
    # themselves are the same in a worker (one function, read_bytes).
    root, good, bad, _ = hostile_tree
    prefix = os.path.join(str(root), "")
    opened: list[str] = []
    violations: list[tuple[str, object]] = []
    real_open, real_os_open = builtins.open, os.open

    def watched_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and os.fsdecode(file).startswith(prefix):
            opened.append(os.fsdecode(file))
            if any(c in mode for c in "wax+"):
                violations.append((os.fsdecode(file), mode))
        return real_open(file, mode, *args, **kwargs)

    def watched_os_open(path, flags, *args, **kwargs):
        if os.fsdecode(path).startswith(prefix):
            opened.append(os.fsdecode(path))
            if flags & _WRITE_FLAGS:
                violations.append((os.fsdecode(path), flags))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watched_open)
    monkeypatch.setattr(os, "open", watched_os_open)
    index(library, [root], tiny_engine, INLINE)
    monkeypatch.undo()
    assert violations == []
    # The watch saw the reads: each good photo was opened exactly once (hash
    # and decode share one read); the FIFO and the broken link never were.
    for path in good:
        assert opened.count(path) == 1, path
    assert str(root / "x.jpg") not in opened and str(root / "broken.jpg") not in opened


def test_decode_side_imports_stay_light():
    # Decode workers import imageio and decode_pool: no torch, no SQLAlchemy.
    code = (
        "import sys, clipdesk.imageio, clipdesk.decode_pool, clipdesk.scanner; "
        "heavy = [m for m in ('torch', 'sqlalchemy', 'open_clip') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
