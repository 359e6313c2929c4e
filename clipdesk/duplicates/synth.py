"""Generated photo trees with known duplicate answers: for tests, and for the per-tier precision/recall figures.

From each source photo (read only; everything is written under ``out``)
:func:`make_tree` makes one kind of group, in turn:

* ``exact``: an original and a byte-for-byte copy;
* ``pixels``: one PNG twice, the same pixels under different metadata (text chunk, EXIF date);
* ``near``: an original with date and camera, and copies without them: resized, re-encoded,
  rotated, mirrored, recoloured, exposure changed, a caption drawn on, converted to PNG and WebP;
* ``burst``: three shots one or two seconds apart, the frame moving a little between them;

and ``negatives`` further photos on their own, at other times. ``Tree.truth`` maps each file to its group
name (None for a negative) and ``Tree.tiers`` each group name to the tier it must be found as.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps, PngImagePlugin

from clipdesk.eval.transforms import colour, text

KINDS = ("exact", "pixels", "near", "burst")
NEAR_EDITS = ("resized", "jpeg_q30", "rot90", "mirror", "colour", "exposure", "caption", "png", "webp")
_DATETIME_ORIGINAL, _EXIF_IFD, _MAKE, _MODEL = 0x9003, 0x8769, 0x010F, 0x0110
_START = datetime(2023, 5, 1, 9, 0, 0)


@dataclass
class Tree:
    root: Path
    truth: dict[str, str | None] = field(default_factory=dict)  # file path -> group name
    tiers: dict[str, str] = field(default_factory=dict)  # group name -> tier
    keepers: dict[str, str] = field(default_factory=dict)  # group name -> the file that must be kept

    def groups(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for path, g in self.truth.items():
            if g is not None:
                out.setdefault(g, set()).add(path)
        return out


def _exif(when: datetime | None, camera: bool = True) -> Image.Exif:
    exif = Image.Exif()
    if camera:
        exif[_MAKE], exif[_MODEL] = "Clipdesk", "Test Camera"
    if when is not None:
        exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = when.strftime("%Y:%m:%d %H:%M:%S")
    return exif


def _upright(path: Path, max_side: int = 640) -> Image.Image:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return im


def make_tree(sources: list[Path], out: Path, negatives: int = 3, seed: int = 0) -> Tree:
    """One group per source photo, kinds in turn (``KINDS``), then ``negatives`` lone photos from the rest."""
    out.mkdir(parents=True, exist_ok=True)
    tree = Tree(out)
    rng = np.random.default_rng(seed)
    n_groups = max(0, len(sources) - negatives)
    for g, src in enumerate(sources[:n_groups]):
        kind = KINDS[g % len(KINDS)]
        name = f"{kind}{g:03d}"
        im = _upright(src)
        when = _START + timedelta(hours=g)
        getattr(_Maker(tree, out, name, rng), kind)(im, when)
    for n, src in enumerate(sources[n_groups:]):
        path = out / f"single{n:03d}.jpg"
        _upright(src).save(path, "JPEG", quality=90, exif=_exif(_START + timedelta(days=1, hours=n)))
        tree.truth[str(path)] = None
    return tree


class _Maker:
    def __init__(self, tree: Tree, out: Path, name: str, rng: np.random.Generator) -> None:
        self.tree, self.out, self.name, self.rng = tree, out, name, rng

    def _add(self, path: Path, tier: str, keeper: bool = False) -> None:
        self.tree.truth[str(path)] = self.name
        self.tree.tiers[self.name] = tier
        if keeper:
            self.tree.keepers[self.name] = str(path)

    def exact(self, im: Image.Image, when: datetime) -> None:
        a = self.out / f"{self.name}_original.jpg"
        im.save(a, "JPEG", quality=92, exif=_exif(when))
        b = self.out / f"{self.name}_copy.jpg"
        shutil.copyfile(a, b)
        self._add(a, "exact")  # a tie: whichever was added first is kept
        self._add(b, "exact")

    def pixels(self, im: Image.Image, when: datetime) -> None:
        a, b = self.out / f"{self.name}_plain.png", self.out / f"{self.name}_tagged.png"
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "edited in another app")
        im.save(a, "PNG")
        im.save(b, "PNG", pnginfo=info, exif=_exif(when))
        self._add(a, "exact")
        self._add(b, "exact", keeper=True)  # the same pixels: the one with metadata wins

    def near(self, im: Image.Image, when: datetime) -> None:
        orig = self.out / f"{self.name}_original.jpg"
        im.save(orig, "JPEG", quality=95, exif=_exif(when))
        self._add(orig, "near", keeper=True)
        w, h = im.size
        edits = {
            "resized": lambda: im.resize((w // 2, h // 2), Image.Resampling.LANCZOS),
            "jpeg_q30": lambda: im,
            "rot90": lambda: im.transpose(Image.Transpose.ROTATE_90),
            "mirror": lambda: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            "colour": lambda: colour(im, self.rng),
            "exposure": lambda: ImageEnhance.Brightness(im).enhance(1.5),
            "caption": lambda: text(im, self.rng),
            "png": lambda: im,
            "webp": lambda: im,
        }
        for edit in NEAR_EDITS:
            ext, fmt, opts = {"png": (".png", "PNG", {}), "webp": (".webp", "WEBP", {"quality": 80}),
                              "jpeg_q30": (".jpg", "JPEG", {"quality": 30})}.get(edit, (".jpg", "JPEG",
                                                                                       {"quality": 85}))
            path = self.out / f"{self.name}_{edit}{ext}"
            edits[edit]().save(path, fmt, **opts)  # no EXIF: copies usually lose it
            self._add(path, "near")

    def burst(self, im: Image.Image, when: datetime) -> None:
        w, h = im.size
        cw, ch = int(w * 0.9), int(h * 0.9)
        for shot, (dx, dt) in enumerate(((0, 0), (0.05, 1), (0.1, 3))):
            frame = im.crop((int(w * dx), 0, int(w * dx) + cw, ch))
            path = self.out / f"{self.name}_shot{shot}.jpg"
            frame.save(path, "JPEG", quality=90, exif=_exif(when + timedelta(seconds=dt)))
            self._add(path, "similar")  # which shot to keep is the user's call: no known answer
