"""The edits that turn a photo into its near-duplicates: what a copy of a photo goes through in real life.

Each transform takes an upright RGB image and a numpy ``Generator`` and
returns a new image; all randomness comes from the generator, so a view is
a function of (photo, transform, seed). ``TRANSFORMS`` lists the names in a
fixed order; :func:`make_view` seeds one view and :func:`split_transforms`
divides the kinds into those a tuner may train on and those held out to
test it, because a guard that tests on the edits it trained on measures
memory, not retrieval.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def _pick(rng: np.random.Generator, *ranges: tuple[float, float]) -> float:
    """A value from one of ``ranges``, chosen at random: e.g. clearly darker *or* clearly brighter."""
    lo, hi = ranges[int(rng.integers(len(ranges)))]
    return float(rng.uniform(lo, hi))


def crop(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Keep 50-80 % of each side, anywhere in the frame (a reframed or cropped copy)."""
    w, h = im.size
    cw, ch = max(1, round(w * rng.uniform(0.5, 0.8))), max(1, round(h * rng.uniform(0.5, 0.8)))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return im.crop((left, top, left + cw, top + ch))


def rescale(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shrink to a thumbnail of 64-128 px on the long side: a copy that lost its detail."""
    side = int(rng.integers(64, 129))
    scale = side / max(im.size)
    return im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BILINEAR)


def rotate90(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A quarter turn either way (a phone photo whose orientation tag was lost)."""
    return im.transpose(Image.Transpose.ROTATE_90 if rng.integers(2) else Image.Transpose.ROTATE_270)


def rotate180(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.transpose(Image.Transpose.ROTATE_180)


def rotate_small(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """3-12 degrees either way, the frame enlarged with black corners (a scanned or re-photographed print)."""
    angle = _pick(rng, (-12.0, -3.0), (3.0, 12.0))
    return im.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))


def flip(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mirrored left to right (a selfie camera, an edit)."""
    return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def jpeg(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Re-encoded as a JPEG at quality 8-25 (a messaging app's copy); returned as the decoded JPEG.

    The image comes back as a JPEG (``format == "JPEG"``), so the model input
    is prepared from it exactly as from a JPEG file, reduced-size decode included.
    """
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(rng.integers(8, 26)))
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def colour(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Saturation far down or up, and the hue turned by 15-40 degrees (a filter)."""
    out = ImageEnhance.Color(im).enhance(_pick(rng, (0.0, 0.35), (1.7, 2.3)))
    h, s, v = out.convert("HSV").split()
    shift = int(_pick(rng, (-28.0, -10.0), (10.0, 28.0)))  # of 256 steps around the hue circle
    h = h.point(lambda x: (x + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def exposure(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Clearly darker or brighter, with the contrast changed too."""
    out = ImageEnhance.Brightness(im).enhance(_pick(rng, (0.4, 0.65), (1.4, 1.8)))
    return ImageEnhance.Contrast(out).enhance(float(rng.uniform(0.65, 1.35)))


_WORDS = ("holiday", "IMG", "2023", "best day ever", "sale", "FOR SALE", "family", "trip", "memories", "lol",
          "morning", "weekend", "copyright", "draft", "view", "summer", "photo", "new", "look at this", "wow")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's bundled font (FreeType, any size): no system font, so the same pixels everywhere.
    return ImageFont.load_default(size=max(8, size))


def text(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A caption, watermark or meme text drawn across the photo, 8-14 % of its height, outlined."""
    out = im.copy()
    draw = ImageDraw.Draw(out)
    words = " ".join(_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), size=int(rng.integers(2, 5))))
    font = _font(round(out.height * rng.uniform(0.08, 0.14)))
    if (width := draw.textlength(words, font=font)) > 0.9 * out.width:
        font = _font(int(font.size * 0.9 * out.width / width))  # a narrow photo: smaller letters, not cut off
    stroke = max(1, font.size // 12)
    left, top, right, bottom = draw.textbbox((0, 0), words, font=font, stroke_width=stroke)
    x = int(rng.integers(0, max(0, out.width - (right - left)) + 1)) - left
    y = int(rng.integers(0, max(0, out.height - (bottom - top)) + 1)) - top
    fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
    draw.text((x, y), words, font=font, fill=fill, stroke_width=stroke, stroke_fill=(0, 0, 0))
    return out


def border(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A plain frame of 4-12 % of the long side in one colour (a framed print, a social-media template)."""
    width = max(1, round(max(im.size) * rng.uniform(0.04, 0.12)))
    fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
    return ImageOps.expand(im, border=width, fill=fill)


def letterbox(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Padded with black bars to another aspect ratio (16:9, 9:16, 1:1 or 4:5), centred."""
    target = (16 / 9, 9 / 16, 1.0, 4 / 5)[int(rng.integers(4))]
    w, h = im.size
    if abs(w / h - target) < 0.05:
        target = 9 / 16 if w >= h else 16 / 9  # already that shape: bars only show with another one
    cw, ch = (round(h * target), h) if w / h < target else (w, round(w / target))
    canvas = Image.new("RGB", (cw, ch), (0, 0, 0))
    canvas.paste(im, ((cw - w) // 2, (ch - h) // 2))
    return canvas


def screenshot(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The photo at 35-60 % of the width inside a UI-like window: title bar, sidebar, text lines."""
    cw, ch = 1280, 800
    shade = int(rng.integers(225, 250)) if rng.integers(2) else int(rng.integers(25, 50))
    ink = (90, 90, 90) if shade > 128 else (170, 170, 170)
    canvas = Image.new("RGB", (cw, ch), (shade, shade, shade))
    draw = ImageDraw.Draw(canvas)
    bar = tuple(int(c) for c in rng.integers(40, 200, size=3))
    draw.rectangle((0, 0, cw, 44), fill=bar)
    draw.text((16, 10), "Photos - " + _WORDS[int(rng.integers(len(_WORDS)))], font=_font(22), fill=(255, 255, 255))
    sidebar = int(rng.integers(160, 260))
    draw.rectangle((0, 44, sidebar, ch), fill=(shade - 15, shade - 15, shade - 15))
    for row in range(8):
        draw.text((14, 70 + row * 34), _WORDS[int(rng.integers(len(_WORDS)))], font=_font(18), fill=ink)
    width = round((cw - sidebar) * rng.uniform(0.35, 0.6))
    photo = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.BICUBIC)
    photo = photo.crop((0, 0, photo.width, min(photo.height, ch - 140)))
    # Inside the centre square, which is all a centre-cropping model sees of the window.
    lo = max(sidebar + 20, (cw - ch) // 2)
    x = int(rng.integers(lo, max(lo, (cw + ch) // 2 - photo.width) + 1))
    canvas.paste(photo, (x, 70))
    for row in range(3):
        y = 90 + photo.height + row * 26
        draw.rectangle((x, y, x + int(rng.integers(120, photo.width + 1)), y + 10), fill=ink)
    return canvas


# The order is part of a benchmark's identity (its digest): append new kinds, never reorder.
TRANSFORMS: dict[str, Transform] = {
    "crop": crop, "rescale": rescale, "rotate90": rotate90, "rotate180": rotate180, "rotate_small": rotate_small,
    "flip": flip, "jpeg": jpeg, "colour": colour, "exposure": exposure, "text": text, "border": border,
    "letterbox": letterbox, "screenshot": screenshot,
}
# Held out of tuning by default: one geometric, one compression, one overlay and one composition edit,
# so a tuned model is tested on kinds of change it never saw.
HELD_OUT = ("rotate_small", "jpeg", "text", "screenshot")


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` in ``TRANSFORMS`` order; a ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown transform(s) {', '.join(unknown)}; known: {', '.join(TRANSFORMS)}")
    return tuple(n for n in TRANSFORMS if n in set(names))


def split_transforms(held_out: Sequence[str] = HELD_OUT) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, test): the kinds a tuner may learn from, and the ``held_out`` kinds its guard tests on."""
    test = check_names(held_out)
    return tuple(n for n in TRANSFORMS if n not in test), test


def view_rng(seed: int, photo_key: str, name: str) -> np.random.Generator:
    """The generator of one view: depends on the seed, the photo and the transform only, so a photo's
    ``crop`` view is the same whichever other transforms a benchmark uses."""
    digest = hashlib.sha256(f"{seed}\0{photo_key}\0{name}".encode("utf-8", "surrogateescape")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def make_view(image: Image.Image, name: str, seed: int = 0, photo_key: str = "") -> Image.Image:
    """The ``name`` transform of ``image`` (upright RGB), reproducible for (``seed``, ``photo_key``, ``name``)."""
    return TRANSFORMS[name](image, view_rng(seed, photo_key, name))


def make_views(image: Image.Image, names: Sequence[str] = tuple(TRANSFORMS), seed: int = 0,
               photo_key: str = "") -> list[tuple[str, Image.Image]]:
    """One view per transform in ``names``: ``[(name, image), ...]``."""
    return [(n, make_view(image, n, seed, photo_key)) for n in check_names(names)]
