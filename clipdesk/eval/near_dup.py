"""A near-duplicate benchmark built reproducibly from any photos: originals, their edited copies, distractors.

A seeded sample of the photos are the queries. Each query's relevant
candidates are its views (the transforms of ``transforms.py``, made in
memory, never written anywhere); every other item is a distractor: the
other photos' originals and the other queries' views. The same photos,
seed and transforms give the same items, in the same order, with the same
digest; this is the set that ``eval retrieval`` scores, that tuning's guard
scores on held-out transforms, and that a duplicate finder can score its
tiers on::

    train, test = split_transforms()
    bench = build_near_duplicate_set(photos, n_queries=100, seed=0, transforms=test)
    vectors = Embedder(encoder).embed([item.source for item in bench.items]).vectors
    relevant, exclude = bench.relevance()
    mean_average_precision(vectors[bench.queries] @ vectors.T, relevant, 100, exclude)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from clipdesk.eval.transforms import TRANSFORMS, check_names, make_view
from clipdesk.imageio import decode_to_fit, read_bytes

ORIGINAL = "original"
# Views are made from the photo shrunk to this long side: far above any model input (384 px at most), and
# a 12 MP photo's edits take milliseconds instead of a second each.
VIEW_SIDE = 1024


def load_upright(path: str | Path, side: int = VIEW_SIDE) -> Image.Image:
    """A photo decoded upright (EXIF orientation applied) in RGB, shrunk to fit ``side`` (never enlarged)."""
    return decode_to_fit(read_bytes(path)[1], side)


@lru_cache(maxsize=4)
def _decoded(path: str, mtime_ns: int, size: int) -> Image.Image:
    return load_upright(path)


def _cached_upright(path: Path) -> Image.Image:
    # A query's views are consecutive in the item list, so a few decoded photos serve them all with one
    # decode (keyed by mtime and size too: a changed file is decoded again). Transforms never modify
    # their input, so the cached image is shared safely.
    st = path.stat()
    return _decoded(str(path), st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class Item:
    """One candidate of the benchmark.

    Attributes:
        path: the photo file it is, or is made from.
        group: index of that photo in the benchmark's photo list; same group, near-duplicates.
        transform: ``"original"`` or a ``TRANSFORMS`` name.
        seed: the benchmark seed (with the file name and transform, it fixes the view's pixels).
    """

    path: Path
    group: int
    transform: str
    seed: int = 0

    @property
    def is_original(self) -> bool:
        return self.transform == ORIGINAL

    @property
    def source(self):
        """What ``encode.Embedder`` takes: the file for an original (read as indexing reads it), else this view."""
        return self.path if self.is_original else self

    def image(self) -> Image.Image:
        """The item's pixels (upright RGB; the view made again on each call: views are not kept in memory)."""
        base = _cached_upright(self.path)
        return base.copy() if self.is_original else make_view(base, self.transform, self.seed, self.path.name)

    def __str__(self) -> str:
        return f"{self.path} ({self.transform})"


@dataclass(frozen=True)
class NearDupSet:
    """The benchmark: ``items`` (originals first, in photo order, then each query's views), ``queries`` (the
    item indices of the query originals)."""

    photos: tuple[Path, ...]
    items: tuple[Item, ...]
    queries: np.ndarray
    seed: int
    transforms: tuple[str, ...]

    @property
    def groups(self) -> np.ndarray:
        return np.array([it.group for it in self.items], np.int64)

    @property
    def digest(self) -> str:
        """Names, sizes and the item list: the same digest, the same benchmark (on any machine)."""
        h = hashlib.sha256(f"near-dup v1 seed={self.seed}\n".encode())
        for path in self.photos:
            h.update(f"{path.name}\t{_size(path)}\n".encode("utf-8", "surrogateescape"))
        for it in self.items:
            h.update(f"{it.group}\t{it.transform}\n".encode())
        return h.hexdigest()[:16]

    def relevance(self) -> tuple[np.ndarray, np.ndarray]:
        """(relevant, exclude), queries x items: a query's views are relevant; the query itself is left out."""
        groups = self.groups
        relevant = groups[self.queries][:, None] == groups[None, :]
        exclude = np.zeros_like(relevant)
        exclude[np.arange(len(self.queries)), self.queries] = True
        return relevant & ~exclude, exclude

    def describe(self) -> dict:
        """What a report says about the benchmark it used."""
        return {"photos": len(self.photos), "queries": len(self.queries), "items": len(self.items),
                "views_per_query": len(self.transforms), "seed": self.seed, "transforms": list(self.transforms),
                "digest": self.digest}


def build_near_duplicate_set(photos: Sequence[str | Path], n_queries: int | None = 100, seed: int = 0,
                             transforms: Sequence[str] = tuple(TRANSFORMS)) -> NearDupSet:
    """The benchmark over ``photos`` (their order matters: it is the photo list the digest covers).

    Args:
        photos: photo files; the ones not chosen as queries are distractors only.
        n_queries: how many photos become queries (a sample drawn with ``seed``); None: all of them.
        seed: fixes the query sample and every view's random parameters.
        transforms: the kinds of views each query gets (``split_transforms`` gives train and test kinds).

    Raises:
        ValueError: an unknown transform name, or no transform at all.
    """
    paths = tuple(Path(p) for p in photos)
    kinds = check_names(transforms)
    if not kinds:
        raise ValueError("a near-duplicate benchmark needs at least one transform")
    n = len(paths) if n_queries is None else max(0, min(n_queries, len(paths)))
    chosen = np.sort(np.random.default_rng(seed).choice(len(paths), n, replace=False)) if n else np.zeros(0, int)
    items = [Item(p, g, ORIGINAL, seed) for g, p in enumerate(paths)]
    items += [Item(paths[g], int(g), kind, seed) for g in chosen for kind in kinds]
    return NearDupSet(paths, tuple(items), chosen.astype(np.int64), seed, kinds)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
