"""The constructed embedding space of the tuning tests (core and app): known answers without model weights.

Each photo has a true identity vector (photos of one of 10 "scenes" share a
centre), and every edit (a view) adds a large nuisance vector in a separate
16-d subspace (its kind's direction plus noise), so in the base space a
photo's edited copies sit farther from it than other photos of its scene.
Texts are the identity plus noise. Held-out edit kinds have directions of
their own in the nuisance subspace.
"""

from __future__ import annotations

import hashlib

import numpy as np

from clipdesk.engine.base import InputSpec
from clipdesk.tuning.views import HELDOUT_KINDS, TRAIN_KINDS

KINDS = TRAIN_KINDS + HELDOUT_KINDS
KEY = "test:generated"
DIM, ID, NUIS = 64, 40, 16


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class Generator:
    def __init__(self, n: int, seed: int = 0, scenes: int = 10, dups: int = 20) -> None:
        rng = np.random.default_rng(seed)
        self.rot = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0]  # the subspaces are not axis-aligned
        centres = unit(rng.normal(size=(scenes, ID)))
        self.ids = unit(centres[rng.integers(0, scenes, n)] + 0.75 * rng.normal(size=(n, ID)) / np.sqrt(ID))
        self.style = 0.3 * rng.normal(size=(n, NUIS)) / np.sqrt(NUIS)  # a photo's own small nuisance
        for k in range(min(dups, n // 2)):  # photo 2k+1 is a near-copy of photo 2k: the near-duplicate clusters to find
            self.ids[2 * k + 1] = unit(self.ids[2 * k] + 0.05 * rng.normal(size=ID) / np.sqrt(ID))
            self.style[2 * k + 1] = self.style[2 * k]
        self.kind_dir = unit(rng.normal(size=(len(KINDS), NUIS)))
        self.seed = seed

    def _embed(self, identity, nuisance, rng) -> np.ndarray:
        return unit(self.rot @ np.concatenate([identity, nuisance, 0.03 * rng.normal(size=DIM - ID - NUIS)]))

    def original(self, i: int) -> np.ndarray:
        return self._embed(self.ids[i], self.style[i], np.random.default_rng([self.seed, i]))

    def view(self, i: int, kind: int, j: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, i, kind, j, seed])
        edit = 1.3 * (self.kind_dir[kind] * rng.uniform(0.7, 1.3) + 0.5 * rng.normal(size=NUIS) / np.sqrt(NUIS))
        return self._embed(self.ids[i], self.style[i] + edit, rng)

    def text(self, text: str) -> np.ndarray:
        rng = np.random.default_rng(int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"))
        if not text.startswith("photo "):
            return unit(rng.normal(size=DIM))  # generic prompts: unrelated to any photo
        identity = self.ids[int(text.split()[1])] + 0.9 * rng.normal(size=ID) / np.sqrt(ID)
        return unit(self.rot @ np.concatenate([identity, 0.2 * rng.normal(size=DIM - ID) / np.sqrt(DIM - ID)]))


class CodedViews:
    """Views as pixel codes (photo id, kind, index, seed) that ``GeneratedEngine`` turns into vectors."""

    train_kinds, heldout_kinds = TRAIN_KINDS, HELDOUT_KINDS

    def render(self, photo_id, path, kinds, seed):
        out = np.zeros((len(kinds), 2, 2, 3), np.uint8)
        for j, kind in enumerate(kinds):
            out[j, 0, 0] = [photo_id >> 16, (photo_id >> 8) & 255, photo_id & 255]
            out[j, 0, 1] = [KINDS.index(kind), j, seed & 255]
        return out


class GeneratedEngine:
    """An ``Encoder`` over the generator: photo ``i`` of the generator is library photo id ``i + 1``."""

    key, dim, precision, batch_size = KEY, DIM, "fp32", 64

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.pixel_calls = 0

    def input_spec(self):
        return InputSpec(2, False)

    def encode_pixels(self, pixels):
        self.pixel_calls += len(pixels)
        return np.stack([self.gen.view(((int(p[0, 0, 0]) << 16) | (int(p[0, 0, 1]) << 8) | int(p[0, 0, 2])) - 1,
                                       int(p[0, 1, 0]), int(p[0, 1, 1]), int(p[0, 1, 2])) for p in pixels]
                        ).astype(np.float32)

    def encode_text(self, texts):
        return np.stack([self.gen.text(t) for t in texts]).astype(np.float32)

    def encode_files(self, paths):
        raise AssertionError("the generator has no files")
