"""Photos with known words rendered into them: for the OCR tests and ``bench/ocr_cpu.py``.

Several fonts (DejaVu when the system has it, else Pillow's built-in font, so
nothing depends on system fonts), sizes, colours, backgrounds with noise and
a slight rotation, like a sign or a receipt photographed by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


@dataclass(frozen=True)
class Sample:
    name: str
    lines: tuple[str, ...]
    font: str  # a DejaVu file name
    size: int  # font size in pixels
    ink: tuple[int, int, int]
    paper: tuple[int, int, int]
    angle: float  # degrees, counter-clockwise


SAMPLES = (
    Sample("invoice", ("INVOICE #7391", "TOTAL 58.20"), "DejaVuSans-Bold.ttf", 56, (20, 20, 30), (235, 232, 220), 2.5),
    Sample("hotel", ("Zimmer 214", "Rezeption"), "DejaVuSerif.ttf", 64, (140, 10, 10), (210, 225, 240), -3.0),
    Sample("cafe", ("Café Lumière", "OPEN DAILY"), "DejaVuSansMono-Bold.ttf", 48, (250, 250, 250), (40, 60, 90), 1.5),
    Sample("parking", ("PARKING", "Level B2"), "DejaVuSans.ttf", 80, (255, 210, 0), (30, 30, 30), -1.5),
)


def font(name: str, size: int) -> ImageFont.ImageFont:
    path = DEJAVU / name
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def render(sample: Sample, width: int = 1200, height: int = 800, seed: int = 0) -> Image.Image:
    """The sample's lines drawn on a noisy background, rotated slightly."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 10, (height, width, 3))
    base = np.clip(np.asarray(sample.paper, np.float64) + noise, 0, 255).astype(np.uint8)
    im = Image.fromarray(base)
    draw = ImageDraw.Draw(im)
    face = font(sample.font, sample.size)
    y = height // 5
    for line in sample.lines:
        draw.text((width // 10, y), line, fill=sample.ink, font=face)
        y += int(sample.size * 1.8)
    im = im.rotate(sample.angle, resample=Image.Resampling.BICUBIC, fillcolor=sample.paper)
    return im.filter(ImageFilter.GaussianBlur(0.6))  # a camera is never pixel-sharp


def render_plain(width: int = 1200, height: int = 800, seed: int = 0) -> Image.Image:
    """A photo without text: smooth colour gradients and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    r = 120 + 80 * np.sin(xx / 97.0 + seed)
    g = 140 + 60 * np.cos(yy / 71.0)
    b = 100 + 50 * np.sin((xx + yy) / 150.0)
    img = np.stack([r, g, b], -1) + rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def write_samples(folder: Path, samples=SAMPLES, plain: int = 1, **size) -> dict[str, Path]:
    """Write each sample (and ``plain`` photos without text) as JPEG into ``folder``; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, sample in enumerate(samples):
        out[sample.name] = folder / f"{sample.name}.jpg"
        render(sample, seed=i, **size).save(out[sample.name], quality=92)
    for i in range(plain):
        out[f"plain{i}"] = folder / f"plain{i}.jpg"
        render_plain(seed=i, **size).save(out[f"plain{i}"], quality=92)
    return out
