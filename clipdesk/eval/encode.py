"""Images to vectors for the evaluations: files as the library reads them, in-memory views the same way.

A file goes through :func:`clipdesk.imageio.read_photo`, the reader indexing
uses, so a photo's vector here is the vector the library stores for it. A
view made in memory (a transformed copy) goes through the same model-input
preparation (:func:`model_input`: centre square or squash, bicubic resize);
only the reduced-size JPEG decode is absent, because a view has no JPEG
bytes, except the ``jpeg`` view, which is decoded from its JPEG and so gets
it too. A file that cannot be read is recorded with its reason and left
out, never raised.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from clipdesk.errors import Cancelled
from clipdesk.imageio import ImageReadError, model_input, read_photo  # model_input: also this module's name for it
from clipdesk.jobs import CancelToken

if TYPE_CHECKING:
    from PIL import Image


class ImageSource(Protocol):
    """Something that makes an image in memory (a near-duplicate view); ``str()`` names it in errors."""

    def image(self) -> Image.Image: ...


Source = str | os.PathLike[str] | ImageSource


@dataclass
class Embedded:
    """Vectors of some sources: ``vectors[i]`` is valid where ``ok[i]``; ``errors`` say why the others are not."""

    vectors: np.ndarray
    ok: np.ndarray
    errors: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)


class Embedder:
    """Encodes sources in batches for one encoder, with one running count across every call.

    Args:
        encoder: what ``cli.support.engine`` returns (``input_spec()``, ``encode_pixels``).
        batch_size: images decoded and encoded together.
        progress: called with (images done, images asked for so far) after each batch.
        cancel: checked between batches; when set, :class:`clipdesk.errors.Cancelled` is raised.
    """

    def __init__(self, encoder, batch_size: int = 32, progress: Callable[[int, int], None] | None = None,
                 cancel: CancelToken | None = None) -> None:
        self.encoder = encoder
        self.batch_size = max(1, batch_size)
        self.progress = progress
        self.cancel = cancel
        self.done = 0
        self.total = 0

    def embed(self, sources: Sequence[Source]) -> Embedded:
        """Vectors of ``sources``: file paths, or objects with an ``image()`` method (views)."""
        spec = self.encoder.input_spec()
        self.total += len(sources)
        rows: list[tuple[list[int], np.ndarray]] = []
        ok = np.zeros(len(sources), bool)
        errors: list[tuple[str, str]] = []
        dim = 0
        for start in range(0, len(sources), self.batch_size):
            if self.cancel is not None and self.cancel.checkpoint():
                raise Cancelled("Evaluation stopped; nothing was reported.")
            pixels, kept = [], []
            for i, src in enumerate(sources[start:start + self.batch_size], start):
                try:
                    pixels.append(_pixels(src, spec.size, spec.squash))
                    kept.append(i)
                except (ImageReadError, OSError) as exc:
                    errors.append((_name(src), str(exc) or type(exc).__name__))
            if pixels:
                vectors = np.asarray(self.encoder.encode_pixels(np.stack(pixels)), np.float32)
                dim = vectors.shape[1]
                rows.append((kept, vectors))
                ok[kept] = True
            self.done += min(self.batch_size, len(sources) - start)
            if self.progress is not None:
                self.progress(self.done, self.total)
        out = np.full((len(sources), dim), np.nan, np.float32)
        for kept, vectors in rows:
            out[kept] = vectors
        return Embedded(out, ok, errors)


def _pixels(src: Source, size: int, squash: bool) -> np.ndarray:
    if hasattr(src, "image"):
        return model_input(src.image(), size, squash)
    return read_photo(src, size, squash).pixels


def _name(src: Source) -> str:
    return str(src) if hasattr(src, "image") else os.fspath(src)
