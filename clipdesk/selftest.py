"""The checks behind ``clipdesk-gui --self-test`` that need no Qt.

The packaged app proves it works on a user's machine by indexing the sample
photos shipped in ``resources/samples`` with the test-only random model and
running a text and a similar search. The samples are made by
``make_samples`` (drawn, not photographed): one of them is a re-encoded,
slightly resized copy of another, so a similar search from the original must
rank the copy first whatever the model's weights, as long as the pipeline
(decode, encode, store, search) is intact.
"""

from __future__ import annotations

import os
from pathlib import Path

from clipdesk.errors import ClipdeskError

ORIGINAL, NEAR_DUPLICATE = "red_circle.jpg", "red_circle_copy.jpg"


class SelfTestFailed(ClipdeskError):
    exit_code = 1


def samples_dir() -> Path:
    root = os.environ.get("CLIPDESK_RESOURCES") or Path(__file__).resolve().parents[1] / "resources"
    return Path(root) / "samples"


def make_samples(folder: Path) -> list[Path]:
    """Draw the sample photos into ``folder`` (how ``resources/samples`` was made)."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:192, 0:256]
    sky = np.stack([200 - y // 2, 220 - y // 3, 255 - y // 4], -1).clip(0, 255).astype(np.uint8)
    circle = Image.fromarray(sky)
    ImageDraw.Draw(circle).ellipse((80, 50, 176, 146), fill=(220, 30, 40))
    stripes = np.zeros((192, 256, 3), np.uint8)
    stripes[(x // 16) % 2 == 0] = (30, 60, 200)
    stripes[(x // 16) % 2 == 1] = (240, 220, 40)
    grass = np.stack([40 + rng.integers(0, 60, y.shape), 120 + rng.integers(0, 90, y.shape),
                      30 + rng.integers(0, 40, y.shape)], -1).astype(np.uint8)
    out = [folder / ORIGINAL, folder / NEAR_DUPLICATE, folder / "blue_stripes.png", folder / "green_grass.jpg"]
    circle.save(out[0], quality=92)
    circle.resize((232, 174), Image.Resampling.LANCZOS).save(out[1], quality=70)  # a resized re-save
    Image.fromarray(stripes).save(out[2])
    Image.fromarray(grass).save(out[3], quality=85)
    return out


def check_library(library, engine) -> list[str]:
    """Text and similar searches over an indexed samples library; returns what was checked.

    Raises:
        SelfTestFailed: with the reason, when a check fails.
    """
    from clipdesk.search import Searcher, Term

    expected = {p.name for p in samples_dir().iterdir() if p.is_file()}
    searcher = Searcher(library, engine, hnsw_min_size=1_000_000, cutoff=False)
    text = searcher.search([Term("text", "a red circle in the sky")], k=10, show_all=True)
    found = {Path(h.path).name for h in text.hits}
    if found != expected:
        raise SelfTestFailed(f"text search found {sorted(found)}, expected all of {sorted(expected)}")
    original = next((h for h in text.hits if Path(h.path).name == ORIGINAL), None)
    similar = searcher.search([Term("photo", original.photo_id)], k=10, show_all=True)
    ranked = [(Path(h.path).name, round(h.score, 3)) for h in similar.hits if h.photo_id != original.photo_id]
    # A resized re-save embeds almost identically (>= 0.999 with the test model); a photo that merely
    # looks alike scores lower (noise in its place: 0.967), so the bar checks the pixels took the whole path.
    if not ranked or ranked[0][0] != NEAR_DUPLICATE or ranked[0][1] < 0.99:
        raise SelfTestFailed(f"similar search from {ORIGINAL} ranked {ranked}, expected {NEAR_DUPLICATE} first "
                             "with a score of at least 0.99")
    return [f"text search: {len(text.hits)} photos ranked", f"similar search: {NEAR_DUPLICATE} first",
            f"engine: {type(engine).__name__} on {engine.device}"]
