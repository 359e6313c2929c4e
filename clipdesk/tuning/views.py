"""Augmented views of a photo, as model input: what tuning trains on, and what its guard tests with.

The edits are the retrieval benchmark's (``eval.transforms``), split the way
it splits them: tuning trains on ``TRAIN_KINDS`` (crops, rescales, quarter
turns, flips, colour and exposure changes, borders, letterboxes) and the
guard measures near-duplicate retrieval on ``HELDOUT_KINDS`` (small
rotations, JPEG re-encodes, text overlays, screenshots), which training
never saw, so a rise there is invariance learned, not memorised. A view
depends on (seed, photo, kind) only: the same library gives the same views
on every run.

``ViewSource`` is what ``run.tune`` takes, so a test can render views its
own fake engine understands; ``PhotoViews`` renders real photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from clipdesk.engine.base import InputSpec
from clipdesk.eval.near_dup import load_upright
from clipdesk.eval.transforms import make_view, split_transforms
from clipdesk.imageio import model_input

TRAIN_KINDS, HELDOUT_KINDS = split_transforms()


class ViewSource(Protocol):
    """Renders views of library photos as the engine's ``encode_pixels`` input (N x S x S x 3 uint8)."""

    train_kinds: tuple[str, ...]
    heldout_kinds: tuple[str, ...]

    def render(self, photo_id: int, path: str, kinds: Sequence[str], seed: int) -> np.ndarray:
        """One view per kind; raises ``OSError`` or ``imageio.ImageReadError`` for an unreadable photo."""


def kinds_for(index: int, kinds: Sequence[str], n: int) -> list[str]:
    """``n`` kinds for the ``index``-th photo: a rotation through ``kinds``, so every kind is used evenly."""
    return [kinds[(index + j) % len(kinds)] for j in range(n)]


class PhotoViews:
    """Real photos: decoded once (upright, shrunk as the benchmark does), edited, then cropped as indexing does."""

    train_kinds = TRAIN_KINDS
    heldout_kinds = HELDOUT_KINDS

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec

    def render(self, photo_id: int, path: str, kinds: Sequence[str], seed: int) -> np.ndarray:
        source = load_upright(path)
        return np.stack([model_input(make_view(source, kind, seed, f"photo-{photo_id}"), self.spec.size,
                                     self.spec.squash) for kind in kinds])
