"""Label scores from descriptors ("classification by description") with abstention.

Each label is described by a few visual phrases. Every phrase is encoded in
a few prompt templates (averaged, renormalised); a label's score on a photo
is the mean cosine similarity of its descriptors (Menon & Vondrick, 2022),
and its evidence is those descriptors, best first. A label only fires when

* it beats the photo's best *background* prompt ("a photo", "a blurry
  photo"...) by ``margin``: CLIPN's idea of letting the model say "none";
* and it stands out from the library: above ``median + z * spread`` of that
  label's scores over the library (robust statistics, so a label on many
  photos does not raise its own bar).

Descriptor vectors are cached per (model, vocabulary content) in the
library's cache folder: editing descriptors re-encodes a few hundred short
texts, never the photos.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipdesk.engine.base import Encoder
from clipdesk.labels.vocab import Vocabulary

if TYPE_CHECKING:
    from clipdesk.labels.feedback import LabelProbe

TEMPLATES = (
    "a photo of a {label}, which has {descriptor}.",
    "a photo of a {label}, which is {descriptor}.",
    "a photo of a {label}, with {descriptor}.",
)
BACKGROUND_PROMPTS = (
    "a photo", "a blurry photo", "an image of something", "a photo of an object",
    "a picture", "a snapshot", "a photo of something",
)
DEFAULT_MARGIN = 0.0
DEFAULT_Z = 2.0
# Below this many photos the library distribution says little: no z cut.
MIN_CALIBRATION = 30
# Library statistics come from at most this many photos (a fixed random sample).
CALIBRATION_SAMPLE = 20_000
# Scores of one label barely vary on constructed or tiny sets; keep the bar above noise.
MIN_SPREAD = 1e-3
_CACHE_VERSION = 1
CACHE_KEEP = 4  # descriptor cache files (model x vocabulary) kept per library


# The name labels.run and labels.review type the engine with; scoring reads only ``key`` and ``encode_text``.
TextEncoder = Encoder


@dataclass(frozen=True)
class LabelHit:
    label: str
    score: float
    evidence: list[tuple[str, float]]  # (descriptor, similarity), best first

    def evidence_json(self) -> str:
        return json.dumps([[d, round(s, 4)] for d, s in self.evidence])


@dataclass
class LabelStats:
    """Per-label thresholds from the library's score distribution."""

    center: np.ndarray  # (L,) median
    spread: np.ndarray  # (L,) 1.4826 * MAD, at least MIN_SPREAD
    count: int

    def thresholds(self, z: float) -> np.ndarray:
        return self.center + z * self.spread


@dataclass
class LabelScores:
    names: list[str]
    scores: np.ndarray  # (n, L) mean descriptor similarity
    background: np.ndarray  # (n,) best background prompt similarity
    fires: np.ndarray  # (n, L) bool: margin > 0
    descriptor_sims: np.ndarray  # (n, D)
    bank: DescriptorBank
    margin: np.ndarray  # (n, L) signed distance to the decision boundary (cosine units)
    learned: dict[int, tuple[np.ndarray, str]] = field(default_factory=dict)  # label -> (n,) probability, why

    def __len__(self) -> int:
        return len(self.scores)

    def hit(self, row: int, j: int) -> LabelHit:
        """Label ``j`` on photo ``row`` with its evidence, whether it fires or not."""
        lo, hi = self.bank.offsets[j], self.bank.offsets[j + 1]
        sims = self.descriptor_sims[row, lo:hi]
        order = np.argsort(-sims, kind="stable")
        evidence = [(self.bank.descriptors[lo + k], float(sims[k])) for k in order]
        if j in self.learned:
            probability, why = self.learned[j]
            evidence.insert(0, (why, float(probability[row])))
        return LabelHit(self.names[j], float(self.scores[row, j]), evidence)

    def hits(self, row: int) -> list[LabelHit]:
        """The labels that fire on photo ``row``, best first; empty means "none"."""
        out = [self.hit(row, j) for j in np.flatnonzero(self.fires[row])]
        return sorted(out, key=lambda h: -h.score)


def vocabulary_hash(vocabulary: Vocabulary) -> str:
    """Changes whenever a label, a descriptor or the prompts change."""
    content = {
        "v": _CACHE_VERSION, "templates": TEMPLATES, "background": BACKGROUND_PROMPTS,
        "labels": [[lab.name, list(lab.descriptors)] for lab in vocabulary.labels],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


class DescriptorBank:
    """Encoded descriptors for one vocabulary and one model."""

    def __init__(self, encoder: Encoder, vocabulary: Vocabulary, cache_dir: Path | None = None,
                 margin: float = DEFAULT_MARGIN, z: float = DEFAULT_Z) -> None:
        self.vocabulary = vocabulary
        self.names = vocabulary.names()
        self.margin = margin
        self.z = z
        self.vocab_hash = vocabulary_hash(vocabulary)
        self.descriptors: list[str] = []
        offsets = [0]
        for label in vocabulary.labels:
            self.descriptors.extend(label.descriptors)
            offsets.append(len(self.descriptors))
        self.offsets = np.asarray(offsets)
        self.model_key = encoder.key
        self.descriptor_matrix, self.background_matrix = self._load_or_encode(encoder, cache_dir)
        # (D, L) averaging matrix: descriptor sims @ avg = label scores.
        self._avg = np.zeros((len(self.descriptors), len(self.names)), np.float32)
        for j in range(len(self.names)):
            lo, hi = offsets[j], offsets[j + 1]
            self._avg[lo:hi, j] = 1.0 / (hi - lo)

    # -- encoding and the cache -----------------------------------------------

    def cache_path(self, cache_dir: Path) -> Path:
        key = hashlib.sha256(f"{self.model_key}\0{self.vocab_hash}".encode()).hexdigest()[:20]
        return Path(cache_dir) / f"labels-{key}.npz"

    def _load_or_encode(self, encoder: Encoder, cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
        path = self.cache_path(cache_dir) if cache_dir is not None else None
        if path is not None and path.is_file():
            try:
                with np.load(path) as data:
                    if str(data["model_key"]) == self.model_key and str(data["vocab_hash"]) == self.vocab_hash:
                        os.utime(path)  # recently used: kept by _prune
                        return data["descriptors"].astype(np.float32), data["background"].astype(np.float32)
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache file is rebuilt below
        desc = self._encode_descriptors(encoder)
        background = _unit(np.asarray(encoder.encode_text(list(BACKGROUND_PROMPTS)), np.float32))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, descriptors=desc, background=background, model_key=self.model_key,
                     vocab_hash=self.vocab_hash)
            tmp.replace(path)
            _prune(path.parent)
        return desc, background

    def _encode_descriptors(self, encoder: Encoder) -> np.ndarray:
        texts = []
        for j, label in enumerate(self.vocabulary.labels):
            for d in self.descriptors[self.offsets[j]:self.offsets[j + 1]]:
                texts.extend(t.format(label=label.name, descriptor=d) for t in TEMPLATES)
        if not texts:
            return np.zeros((0, 0), np.float32)
        vecs = np.asarray(encoder.encode_text(texts), np.float32)
        vecs = vecs.reshape(len(self.descriptors), len(TEMPLATES), -1).mean(axis=1)
        return _unit(vecs)

    # -- scoring ----------------------------------------------------------------

    def label_scores(self, vectors: np.ndarray) -> np.ndarray:
        """(n, L) label scores for unit image rows."""
        return (np.asarray(vectors, np.float32) @ self.descriptor_matrix.T) @ self._avg

    def calibrate(self, vectors: np.ndarray, chunk: int = 4096) -> LabelStats | None:
        """Library statistics per label, or None when the library is too small to judge."""
        n = len(vectors)
        if n < MIN_CALIBRATION or not self.names:
            return None
        rows = np.arange(n)
        if n > CALIBRATION_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(n, CALIBRATION_SAMPLE, replace=False))
        scores = np.concatenate([self.label_scores(vectors[rows[i:i + chunk]]) for i in range(0, len(rows), chunk)])
        center = np.median(scores, axis=0)
        spread = np.maximum(1.4826 * np.median(np.abs(scores - center), axis=0), MIN_SPREAD)
        return LabelStats(center, spread, len(rows))

    def prior(self, name: str) -> np.ndarray:
        """A label's zero-shot direction: the mean of its descriptor vectors (unit)."""
        j = self.names.index(name)
        return _unit(self.descriptor_matrix[self.offsets[j]:self.offsets[j + 1]].mean(axis=0))

    def score(self, vectors: np.ndarray, stats: LabelStats | None = None,
              probes: dict[str, LabelProbe] | None = None) -> LabelScores:
        """Scores and fired labels for unit image rows (a batch of photos).

        ``probes``: labels the user taught, decided by ``probability > 0.5``.
        """
        vectors = np.asarray(vectors, np.float32)
        sims = vectors @ self.descriptor_matrix.T
        scores = sims @ self._avg
        background = (vectors @ self.background_matrix.T).max(axis=1)
        boundary = np.repeat(background[:, None] + self.margin, len(self.names), axis=1)
        if stats is not None:
            boundary = np.maximum(boundary, stats.thresholds(self.z)[None, :])
        margin = scores - boundary
        learned = {}
        for name, probe in (probes or {}).items():
            j = self.names.index(name)
            logit = probe.logit(vectors)
            # The probe's weights are about ``scale`` x a unit direction: logit / scale is in cosine units.
            margin[:, j] = logit / probe.scale
            why = f"learned from your feedback ({probe.positives} yes, {probe.negatives} no)"
            learned[j] = (1 / (1 + np.exp(-logit)), why)
        return LabelScores(self.names, scores, background, margin > 0, sims, self, margin, learned)


def _prune(cache_dir: Path, keep: int = CACHE_KEEP) -> None:
    """Each vocabulary edit writes a new file (a few MB): keep the most recently used few."""
    files = sorted(cache_dir.glob("labels-*.npz"), key=lambda f: f.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
