"""Reading photos: safe decode at reduced size, EXIF metadata, content hash.

The one image reader of the app: indexing (:func:`read_photo`), thumbnails
(``thumbs.py``, through :func:`decode_to_fit`) and the GUI's preview
(:func:`read_preview`) all open files with :func:`read_bytes` and decode
inside :func:`decoding`, so they share one policy: special files are never
opened, one decompression-bomb limit, only the formats photos come in, EXIF
orientation applied, JPEGs decoded at reduced size, and the same errors.

Runs inside decode worker processes, so it imports neither torch nor
SQLAlchemy. Files are only ever opened for reading.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from collections.abc import Callable
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

# The Pillow formats photos come in (MPO: the multi-picture JPEG of phones).
# Anything else is refused even when Pillow could read it: a ".jpg" that is
# really EPS would otherwise be handed to Ghostscript. Only registered names,
# as Image.open fails on an unknown one.
Image.init()
_FORMATS = tuple(f for f in ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF") if f in Image.OPEN)


def _quiet_pillow_warnings() -> None:
    """Silence, for the whole process, Pillow's warnings about what it already worked around.

    Installed once, at import, and never around a decode: ``catch_warnings``
    and ``simplefilter`` swap the process-wide filter list, so threads
    decoding at once (the GUI's thumbnails and previews) would restore each
    other's copies, leaking filters or losing them. ``filterwarnings`` drops
    an identical filter before adding it, so calling this again is harmless.
    """
    # Between the limit and twice it Pillow only warns: a big photo, decoded
    # as such. Above twice it raises, and that is the refusal.
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    # "Corrupt EXIF data" and kin: damaged metadata Pillow skipped, nothing to
    # act on, and thousands would bury the progress display. Only Pillow's own
    # modules: clipdesk's UserWarnings still show (tests make them errors).
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


_quiet_pillow_warnings()

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
    st, data = read_bytes(path)
    digest = hashlib.blake2b(data, digest_size=20).hexdigest()
    with decoding():
        return _decode(data, (st.st_size, st.st_mtime_ns), digest, target, squash)


def read_preview(path: str | Path, side: int) -> Image.Image:
    """``path`` decoded upright, in RGB, scaled to fit ``side`` x ``side``; for viewing.

    Never enlarged; JPEGs decode at reduced size first, then LANCZOS. A
    multi-frame file gives its first frame; transparency is shown on white.

    Raises:
        ImageReadError: the file is not a usable image (a folder, FIFO, socket
            or device; empty, truncated, unsupported, a decompression bomb).
        OSError: the file vanished or cannot be read.
        ValueError: ``side`` is not positive.
    """
    _check_side(side)
    _st, data = read_bytes(path)
    return decode_to_fit(data, side)


def decode_to_fit(data: bytes, side: int, convert: Callable[[Image.Image], Image.Image] | None = None) -> Image.Image:
    """Image bytes decoded upright and shrunk to fit ``side`` x ``side`` (never enlarged).

    The decode behind previews and thumbnails. The first frame of a
    multi-frame file (where ``Image.open`` leaves it).

    Args:
        data: the file's bytes, from :func:`read_bytes`.
        side: the longest side allowed, in pixels.
        convert: turns the decoded frame into the output mode; default
            :func:`to_rgb` (thumbnails keep transparency with their own).

    Raises:
        ImageReadError: the bytes are not a usable image.
    """
    _check_side(side)
    with decoding():
        im = open_image(data)
        orientation = _orientation_of(im.getexif())
        size = _fit(im.size, side)
        box = None
        if im.format in _DRAFTABLE:
            # Reduced-DCT decode straight to >= side: ~4x faster on 12 MP photos.
            # It rounds its size up, so its last row and column hold only part
            # of a pixel: ``box`` is the area the photo covers.
            drafted = im.draft("RGB", (side, side))
            box = drafted[1] if drafted is not None else None
        im.load()
        out = (convert or to_rgb)(im)
        if out.size != size or box is not None:
            out = out.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    # Shrinking and the EXIF rotations commute (the box is square), so only
    # the small image is rotated.
    return _upright(out, orientation)


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` shrunk to fit ``side`` x ``side``, aspect kept, never enlarged, at least 1 x 1."""
    w, h = size
    scale = min(1.0, side / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def open_image(data: bytes) -> Image.Image:
    """Pillow's lazy image over ``data``, for the photo formats only; call inside :func:`decoding`."""
    return Image.open(io.BytesIO(data), formats=_FORMATS)


def _check_side(side: int) -> None:
    # Before any decoding(), which would turn this ValueError into a bad-file error.
    if side <= 0:
        raise ValueError(f"the longest side must be positive, not {side}")


@contextmanager
def decoding():
    """Decode bytes already in memory: Pillow's failures become ImageReadError.

    Changes no warning filter (safe on any thread): Pillow's noise is silenced
    once for the process, by :func:`_quiet_pillow_warnings` at import.
    """
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"refused: image too large ({exc})") from None
    except UnidentifiedImageError:
        raise ImageReadError("not an image, or an unsupported format") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageReadError(f"cannot decode: {exc or type(exc).__name__}") from None


# For a special file swapped in between the stat and the open: non-blocking,
# so a FIFO cannot hang it (O_NONBLOCK changes nothing for regular files), and
# never a terminal's controlling one. Never a write flag.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def read_bytes(path: str | Path) -> tuple[os.stat_result, bytes]:
    """The bytes of the regular file ``path`` and the stat of exactly those bytes.

    Special files are refused before any open, since opening one can block (a
    FIFO without a writer) or act (a tape device rewinds); the stat of the open
    file is checked again, in case one was swapped in meanwhile.

    Raises:
        ImageReadError: a folder, FIFO, socket or device, or an empty file.
        OSError: the file vanished or cannot be read.
    """
    require_regular(os.stat(path))
    fd = os.open(path, _OPEN_FLAGS)
    with open(fd, "rb", closefd=True) as fh:
        st = os.fstat(fd)
        require_regular(st)
        data = fh.read()
    if not data:
        raise ImageReadError("empty file (0 bytes)")
    return st, data


def require_regular(st: os.stat_result) -> None:
    """Raise ImageReadError unless ``st`` is of a regular file."""
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError("is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError("not a regular file (FIFO, socket or device)")


def _decode(data: bytes, st: tuple[int, int], digest: str, target: int | None, squash: bool) -> PhotoInfo:
    with open_image(data) as im:
        fmt = im.format or "unknown"
        exif = im.getexif()
        frames = getattr(im, "n_frames", 1)
        orientation = _orientation_of(exif)
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


def model_input(image: Image.Image, size: int, squash: bool = False) -> np.ndarray:
    """The model's ``size`` x ``size`` uint8 input from an upright image in memory, exactly as a file gets it.

    For images made in memory (the retrieval benchmark's transformed copies, tuning's views).
    """
    return _model_input(image, size, squash)


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
    return np.asarray(_upright(out, orientation), dtype=np.uint8)


def _orientation_of(exif: Image.Exif) -> int:
    """The EXIF orientation, 1 (as stored) when absent or nonsense."""
    value = exif.get(_ORIENTATION, 1)
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _upright(im: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)


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
    # Transparency as a palette entry or a colour key (tRNS in L and RGB PNGs) too.
    if im.mode in ("P", "L", "RGB") and "transparency" in im.info or im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
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
