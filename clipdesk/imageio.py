"""Reading photos: safe decode at reduced size, EXIF metadata, content hash.

Runs inside decode worker processes, so it imports neither torch nor
SQLAlchemy. Files are only ever opened for reading.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Pillow raises DecompressionBombError above twice this; a 200 MP panorama is
# still a photo, a 1-gigapixel PNG of one colour is an attack.
Image.MAX_IMAGE_PIXELS = 200_000_000
HASH_NAME = "blake2b"

BASE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".avif", ".hif"})


def _register_heif() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        try:
            pillow_heif.register_avif_opener()
        except Exception:  # noqa: BLE001 - AVIF support is optional within pillow-heif builds
            pass
    return True


HEIF_AVAILABLE = _register_heif()
SUPPORTED_EXTENSIONS = BASE_EXTENSIONS | HEIF_EXTENSIONS if HEIF_AVAILABLE else BASE_EXTENSIONS

# EXIF tags (numbers from the EXIF 2.3 spec).
_MAKE, _MODEL, _DATETIME = 0x010F, 0x0110, 0x0132
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 0x9003, 0x9004
_ORIENTATION = 0x0112

# How to turn the stored pixels upright, by EXIF orientation (as ImageOps.exif_transpose).
_TRANSPOSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Formats that support Pillow's reduced-size JPEG decode; MPO is the
# multi-picture JPEG many phones and cameras write.
_DRAFTABLE = frozenset({"JPEG", "MPO"})


class ImageReadError(Exception):
    """A file that cannot be used as a photo; ``str()`` is the reason."""


@dataclass
class PhotoInfo:
    """What one read of a file yields."""

    size: int
    mtime_ns: int
    content_hash: str
    format: str
    width: int  # after EXIF orientation
    height: int
    taken_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    frames: int = 1
    pixels: np.ndarray | None = None  # uint8 HxWx3 model input, when requested


def is_supported(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in SUPPORTED_EXTENSIONS


def read_photo(path: str | Path, target: int | None = None, squash: bool = False) -> PhotoInfo:
    """Read ``path`` once: hash its bytes, parse metadata, optionally decode.

    Args:
        path: the photo.
        target: when set, also return ``pixels``: the centre square resized to
            ``target`` x ``target`` (what CLIP's resize + centre crop yields).
        squash: resize the whole frame to the square instead (SigLIP models).

    Raises:
        ImageReadError: the file is not a usable image; the message says why.
        OSError: the file vanished or cannot be read.
    """
    st, data = _read_bytes(path)
    if not data:
        raise ImageReadError("empty file (0 bytes)")
    digest = hashlib.blake2b(data, digest_size=20).hexdigest()
    with decoding():
        return _decode(data, st, digest, target, squash)


@contextmanager
def decoding():
    """Decode bytes already in memory: Pillow's failures become ImageReadError.

    Pillow also warns about damaged metadata it has already worked around
    ("Corrupt EXIF data"): nothing to act on, and thousands of them would
    bury the progress display, so those warnings are silenced here.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            yield
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"refused: image too large ({exc})") from None
    except UnidentifiedImageError:
        raise ImageReadError("not an image, or an unsupported format") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageReadError(f"cannot decode: {exc or type(exc).__name__}") from None


# Non-blocking: a FIFO put in place of a photo after the walk must not hang the
# read (O_NONBLOCK changes nothing for regular files). Never a write flag.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _read_bytes(path: str | Path) -> tuple[tuple[int, int], bytes]:
    """The file's (size, mtime_ns) and bytes, from one read-only open."""
    fd = os.open(path, _OPEN_FLAGS)
    with open(fd, "rb", closefd=True) as fh:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError("not a regular file (FIFO, socket or device)")
        return (st.st_size, st.st_mtime_ns), fh.read()


def _decode(data: bytes, st: tuple[int, int], digest: str, target: int | None, squash: bool) -> PhotoInfo:
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format or "unknown"
        exif = im.getexif()
        frames = getattr(im, "n_frames", 1)
        orientation = exif.get(_ORIENTATION, 1)
        if not isinstance(orientation, int) or orientation not in _TRANSPOSE:
            orientation = 1
        w, h = im.size
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        info = PhotoInfo(size=st[0], mtime_ns=st[1], content_hash=digest, format=fmt, width=w, height=h, frames=frames)
        _fill_exif(info, exif)
        if frames > 1:
            im.seek(0)  # first frame of an animation (before any draft: seeking resets it)
        if target is None:
            if fmt in _DRAFTABLE:
                im.draft("RGB", (64, 64))  # validate cheaply at 1/8 scale
            im.load()
        else:
            info.pixels = _model_input(im, target, squash, orientation)
    return info


def _model_input(im: Image.Image, target: int, squash: bool, orientation: int = 1) -> np.ndarray:
    """The model's input square from the stored (un-rotated) image.

    Cropping and resizing commute with the EXIF rotations and flips, so both
    happen first and only the ``target``-sized result is rotated.
    """
    full_w, full_h = im.size
    scale = 1.0
    if im.format in _DRAFTABLE:
        # Reduced-DCT decode: 1/2..1/8 scale straight from the JPEG, 5-7x faster.
        drafted = im.draft("RGB", (target, target))
        if drafted is not None:
            scale = drafted[1][2] / full_w
    im.load()
    rgb = to_rgb(im)
    # The area the decoded pixels cover: a reduced decode rounds its size up,
    # so its last row and column hold only part of a pixel.
    vw, vh = full_w * scale, full_h * scale
    if squash:
        box = (0.0, 0.0, vw, vh)
    else:
        side = min(vw, vh)
        left, top = (vw - side) / 2, (vh - side) / 2
        box = (left, top, left + side, top + side)
    # Resizing only the box: an extreme panorama never becomes a huge strip.
    out = rgb.resize((target, target), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    method = _TRANSPOSE.get(orientation)
    if method is not None:
        out = out.transpose(method)
    return np.asarray(out, dtype=np.uint8)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: 16-bit scaled, alpha on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if im.mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr - lo) / (hi - lo or 1.0) * 255.0).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info or im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode != "RGB":
        return im.convert("RGB")
    return im


def _fill_exif(info: PhotoInfo, exif: Image.Exif) -> None:
    if not exif:
        return
    info.camera_make = _text(exif.get(_MAKE))
    info.camera_model = _text(exif.get(_MODEL))
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001 - a corrupt sub-IFD only loses the date
        sub = {}
    for raw in (sub.get(_DATETIME_ORIGINAL), sub.get(_DATETIME_DIGITIZED), exif.get(_DATETIME)):
        info.taken_at = _exif_datetime(raw)
        if info.taken_at:
            break
    try:
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:  # noqa: BLE001
        gps = {}
    info.gps_lat = _gps_coord(gps.get(2), gps.get(1), "S", 90.0)
    info.gps_lon = _gps_coord(gps.get(4), gps.get(3), "W", 180.0)


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).replace("\x00", "").strip()
    return text or None


def _exif_datetime(raw) -> datetime | None:
    text = _text(raw)
    if not text:
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M"):
        try:
            return datetime.strptime(text[:19], fmt)
        except ValueError:
            continue
    return None


def _gps_coord(dms, ref, negative_ref: str, limit: float) -> float | None:
    try:
        d, m, s = (float(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60.0 + s / 3600.0
    if _text(ref) == negative_ref:
        value = -value
    if not (-limit <= value <= limit) or value != value:
        return None
    return round(value, 7)


def read_many(paths: list[str], target: int | None, squash: bool = False) -> list[tuple[str, PhotoInfo | None, str | None]]:
    """Read several files; never raises. Each item is (path, info, error)."""
    out: list[tuple[str, PhotoInfo | None, str | None]] = []
    for path in paths:
        try:
            out.append((path, read_photo(path, target, squash), None))
        except ImageReadError as exc:
            out.append((path, None, str(exc)))
        except FileNotFoundError:
            out.append((path, None, "vanished during the scan"))
        except IsADirectoryError:
            out.append((path, None, "is a folder, not a file"))
        except OSError as exc:
            out.append((path, None, f"cannot read: {exc.strerror or exc}"))
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop a scan
            out.append((path, None, f"unexpected {type(exc).__name__}: {exc}"))
    return out


def ignore_sigint() -> None:
    """Decode workers leave Ctrl-C to the parent, which stops them cleanly."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
