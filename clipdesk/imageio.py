"""Reading photos: safe decode at reduced size, EXIF metadata, content hash.

Runs inside decode worker processes, so it imports neither torch nor
SQLAlchemy. Files are only ever opened for reading.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
    with open(path, "rb") as fh:  # read-only, always
        st = _fstat(fh)
        data = fh.read()
    if not data:
        raise ImageReadError("empty file (0 bytes)")
    digest = hashlib.blake2b(data, digest_size=20).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _decode(data, st, digest, target, squash)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"refused: image too large ({exc})") from None
    except UnidentifiedImageError:
        raise ImageReadError("not an image, or an unsupported format") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageReadError(f"cannot decode: {exc or type(exc).__name__}") from None


def _fstat(fh) -> tuple[int, int]:
    import os

    st = os.fstat(fh.fileno())
    return st.st_size, st.st_mtime_ns


def _decode(data: bytes, st: tuple[int, int], digest: str, target: int | None, squash: bool) -> PhotoInfo:
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format or "unknown"
        exif = im.getexif()
        frames = getattr(im, "n_frames", 1)
        orientation = exif.get(0x0112, 1)
        w, h = im.size
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        info = PhotoInfo(size=st[0], mtime_ns=st[1], content_hash=digest, format=fmt, width=w, height=h, frames=frames)
        _fill_exif(info, exif)
        if target is None:
            if fmt == "JPEG":
                im.draft("RGB", (64, 64))  # validate cheaply at 1/8 scale
            im.load()
        else:
            info.pixels = _model_input(im, target, squash)
    return info


def _model_input(im: Image.Image, target: int, squash: bool) -> np.ndarray:
    if im.format == "JPEG":
        # Reduced-DCT decode: 1/2..1/8 scale straight from the JPEG, 5-7x faster.
        im.draft("RGB", (target, target))
    im.seek(0)  # first frame of an animation
    im.load()
    im = ImageOps.exif_transpose(im)
    rgb = to_rgb(im)
    if squash:
        return np.asarray(rgb.resize((target, target), Image.Resampling.BICUBIC, reducing_gap=3.0), dtype=np.uint8)
    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    # Crop first: an extreme panorama never gets resized to a huge strip.
    square = rgb.crop((left, top, left + side, top + side))
    square = square.resize((target, target), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(square, dtype=np.uint8)


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
    info.gps_lat = _gps_coord(gps.get(2), gps.get(1), "S")
    info.gps_lon = _gps_coord(gps.get(4), gps.get(3), "W")


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


def _gps_coord(dms, ref, negative_ref: str) -> float | None:
    try:
        d, m, s = (float(x) for x in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = d + m / 60.0 + s / 3600.0
    if _text(ref) == negative_ref:
        value = -value
    if not (-180.0 <= value <= 180.0) or value != value:
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
