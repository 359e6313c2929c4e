"""On-disk thumbnail cache: small JPEG (or PNG, for alpha) files in the cache dir.

No Qt here: the GUI's ``ThumbnailLoader`` calls :func:`cached_thumbnail` from
its thread pool, and anything else (CLI, tests) can too. Photos are read and
decoded by ``imageio``, with the same refusals as indexing (special files,
decompression bombs, damaged files); they are only ever opened for reading,
and thumbnails are written under ``cache_dir`` and nowhere else.

A thumbnail's file name is a hash of (path, mtime_ns, file size, thumbnail
size, format version), so an edited photo simply gets a new entry and stale
ones are never served. Old entries are not swept; the directory can be
deleted at any time.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from PIL import Image

from clipdesk.imageio import ImageReadError, decode_to_fit, read_bytes, require_regular, to_rgb
from clipdesk.paths import thumbnail_cache_dir

__all__ = ["ImageReadError", "cached_thumbnail", "thumbnail_cache_dir", "thumbnail_key"]

# Bump when the way thumbnails are made changes, so old files are not served.
FORMAT_VERSION = 1
JPEG_QUALITY = 85
_EXTENSIONS = (".jpg", ".png")
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def thumbnail_key(path: str, mtime_ns: int, file_size: int, size: int) -> str:
    """The cache key of one thumbnail (hex). ``path`` may hold surrogate escapes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(os.fsencode(path))  # the real bytes of a non-UTF-8 name
    h.update(f"\0{mtime_ns}\0{file_size}\0{size}\0v{FORMAT_VERSION}".encode())
    return h.hexdigest()


def cached_thumbnail(path: str, size: int, cache_dir: str | os.PathLike[str]) -> Path:
    """The cached thumbnail of ``path`` fitting ``size`` x ``size``, made if absent.

    Args:
        path: the photo; only ever opened read-only.
        size: the longest side of the thumbnail in pixels (aspect kept, never upscaled).
        cache_dir: where thumbnails live (see :func:`thumbnail_cache_dir`).

    Returns:
        The thumbnail file: ``<hash>.jpg``, or ``<hash>.png`` for a photo with transparency.

    Raises:
        ImageReadError: the file is not a usable image; the message says why.
        OSError: the file vanished or cannot be read.
    """
    if size <= 0:
        raise ValueError(f"thumbnail size must be positive, not {size}")
    shard_root = Path(cache_dir)
    st = os.stat(path)
    require_regular(st)  # a FIFO or folder is refused before the cache is even looked at
    hit = _lookup(shard_root, thumbnail_key(path, st.st_mtime_ns, st.st_size, size))
    if hit is not None:
        return hit
    st, data = read_bytes(path)  # the stat of the bytes actually read, for the key
    thumb = decode_to_fit(data, size, _convert)
    key = thumbnail_key(path, st.st_mtime_ns, st.st_size, size)
    return _write_atomic(thumb, shard_root / key[:2], key)


def _lookup(root: Path, key: str) -> Path | None:
    shard = root / key[:2]
    for ext in _EXTENSIONS:
        candidate = shard / (key + ext)
        if candidate.is_file():
            return candidate
    return None


def _convert(im: Image.Image) -> Image.Image:
    """RGBA for images with transparency (kept for a PNG thumbnail), else 8-bit RGB."""
    transparent = im.mode in _ALPHA_MODES or "transparency" in im.info
    if not transparent:
        return to_rgb(im)
    rgba = im.convert("RGBA")
    low, _high = rgba.getextrema()[3]
    # An alpha channel that is opaque everywhere (common in screenshots) gains
    # nothing from PNG; a smaller JPEG does.
    return rgba.convert("RGB") if low == 255 else rgba


def _write_atomic(thumb: Image.Image, shard: Path, key: str) -> Path:
    """Write via a temp file + ``os.replace``: readers never see half a thumbnail."""
    ext, fmt, options = (".png", "PNG", {"compress_level": 3}) if thumb.mode == "RGBA" else (
        ".jpg", "JPEG", {"quality": JPEG_QUALITY})
    shard.mkdir(parents=True, exist_ok=True)
    final = shard / (key + ext)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=ext, dir=shard)
    try:
        with open(fd, "wb", closefd=True) as fh:
            thumb.save(fh, fmt, **options)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final
