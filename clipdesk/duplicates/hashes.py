"""Per-photo hashes for the duplicate finder: decoded pixels, and rotation/mirror-aware perceptual hashes.

Stored per photo with the content hash they came from, so only new or
changed photos are hashed again. Rotations and mirror images are handled by
storing the pHash of all eight dihedral variants of the photo rather than one
canonical hash: a canonical form (e.g. the smallest of the eight) flips to
another variant under small edits, while comparing a photo's eight variants
with the other photo's identity hash degrades gracefully, and the evidence
can name the transform that matched. A ninth entry is the pHash with plain
borders trimmed (letterbox bars, a frame), kept beside the untrimmed one
because trimming alone would also eat a sky an exposure change burnt white.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, ImageOps

from clipdesk.imageio import decoding, open_image, read_bytes, to_rgb

# The eight dihedral variants, identity first; names as the evidence shows them.
VARIANTS: tuple[tuple[str, Image.Transpose | None], ...] = (
    ("identity", None),
    ("rot90", Image.Transpose.ROTATE_90),
    ("rot180", Image.Transpose.ROTATE_180),
    ("rot270", Image.Transpose.ROTATE_270),
    ("mirror", Image.Transpose.FLIP_LEFT_RIGHT),
    ("flip", Image.Transpose.FLIP_TOP_BOTTOM),
    ("transpose", Image.Transpose.TRANSPOSE),
    ("transverse", Image.Transpose.TRANSVERSE),
    ("borders", None),  # not a transpose: the photo with plain borders trimmed
)
N_VARIANTS = len(VARIANTS)
# The transform that undoes each one (what a match found from the other photo's side names).
INVERSE = {"rot90": "rot270", "rot270": "rot90"}
# pHash works on 32x32 grey pixels: shrink once to this, then transform the small image.
_SMALL = 64


@dataclass(frozen=True)
class Hashes:
    pixel_hash: str  # blake2b of the upright RGB pixels and their size
    phash: int  # unsigned 64 bits
    dhash: int
    variants: tuple[int, ...]  # pHash of each of VARIANTS, identity first


def hash_image(image: Image.Image) -> Hashes:
    """The hashes of an upright image in memory."""
    rgb = to_rgb(image)
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{rgb.width}x{rgb.height}\0".encode())
    h.update(rgb.tobytes())
    grey = rgb.convert("L")
    small = grey.resize((_SMALL, _SMALL), Image.Resampling.LANCZOS)
    trimmed = trim_borders(grey).resize((_SMALL, _SMALL), Image.Resampling.LANCZOS)
    variants = tuple(_bits(imagehash.phash(small if t is None else small.transpose(t))) for _, t in VARIANTS[:8])
    variants += (_bits(imagehash.phash(trimmed)),)
    return Hashes(h.hexdigest(), variants[0], _bits(imagehash.dhash(small)), variants)


# How far (of 255) a row or column may stray from the corner's grey and still count as a plain border.
_BORDER_TOLERANCE = 12


def trim_borders(grey: Image.Image) -> Image.Image:
    """``grey`` without plain bars or a frame in one colour around it (letterboxing, a framed print).

    Both copies of a photo are trimmed alike, so a copy with a border hashes as the photo without it; a
    photo with no such border (nearly all) is unchanged. At most a third of each side is trimmed.
    """
    a = np.asarray(grey, dtype=np.int16)
    h, w = a.shape
    corner = int(np.median([a[0, 0], a[0, -1], a[-1, 0], a[-1, -1]]))
    differs = np.abs(a - corner) > _BORDER_TOLERANCE
    rows, cols = np.flatnonzero(differs.mean(axis=1) > 0.02), np.flatnonzero(differs.mean(axis=0) > 0.02)
    if len(rows) == 0 or len(cols) == 0:
        return grey
    top, bottom = min(rows[0], h // 3), max(rows[-1] + 1, h - h // 3)
    left, right = min(cols[0], w // 3), max(cols[-1] + 1, w - w // 3)
    if (top, left, bottom, right) == (0, 0, h, w):
        return grey
    return grey.crop((int(left), int(top), int(right), int(bottom)))


def hash_file(path: str) -> Hashes:
    """Read ``path`` once (for reading only) and hash it, EXIF orientation applied.

    Raises:
        ImageReadError: not a usable image; OSError: unreadable or gone.
    """
    _st, data = read_bytes(path)
    with decoding():
        with open_image(data) as im:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            return hash_image(ImageOps.exif_transpose(im))


def _bits(h: imagehash.ImageHash) -> int:
    out = 0
    for bit in h.hash.flatten():
        out = (out << 1) | int(bit)
    return out


def to_signed(value: int) -> int:
    """The signed 64-bit view SQLite stores."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def pack_variants(variants: tuple[int, ...]) -> bytes:
    return np.array(variants, dtype="<u8").tobytes()


def unpack_variants(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u8")


def popcount(x: np.ndarray) -> np.ndarray:
    """Bits set in each uint64 (numpy's bitwise_count where there is one)."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    b = x.view(np.uint8).reshape(*x.shape, 8)
    return np.unpackbits(b, axis=-1).sum(axis=-1).astype(np.int64)
