"""Caption text for the embedding decoder: the train/held-out split and the word vocabulary.

The split is by image, fixed, and never depends on a seed:

- Flickr8k: the official ``test`` images are held out; ``train``, ``dev`` and
  the unassigned images are used for training.
- COCO val2017: images whose id is divisible by 10 are held out; the images of
  ``coco_mini`` (``in_coco_mini``) are used for neither, so ``clipdesk eval
  captions`` on coco_mini never scores a caption the decoder has read.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipdesk.errors import ClipdeskError

COCO_FILE = "coco_val2017_captions.json"
FLICKR_FILE = "flickr8k_captions.json"
HELD_OUT_COCO_MODULO = 10

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")

# Lower-case words (with an apostrophe suffix, "it's"); punctuation is dropped
# because the two corpora punctuate differently ("table." vs "table .").
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class CaptionDataMissing(ClipdeskError):
    """The caption text files the decoder trains on cannot be found."""


@dataclass(frozen=True)
class CaptionSplit:
    """Captions grouped per image: ``train`` and ``held_out`` share no image.

    ``*_images`` name the image of each group (``coco:<id>`` or ``flickr8k:<file>``).
    """

    train: list[list[str]]
    held_out: list[list[str]]
    train_images: list[str]
    held_out_images: list[str]

    def train_captions(self, limit: int | None = None) -> list[str]:
        """Training captions, round-robin over images so a cap keeps every image."""
        return _round_robin(self.train, limit)

    def held_out_captions(self, limit: int | None = None) -> list[str]:
        """One caption per held-out image first (the most varied sample), then the rest."""
        return _round_robin(self.held_out, limit)


def _round_robin(groups: Sequence[Sequence[str]], limit: int | None) -> list[str]:
    out: list[str] = []
    depth = max((len(g) for g in groups), default=0)
    for i in range(depth):
        for group in groups:
            if i < len(group):
                out.append(group[i])
                if limit is not None and len(out) >= limit:
                    return out
    return out


def caption_data_dir() -> Path:
    """``CLIPDESK_CAPTION_DATA``, else a ``shared/data/captions`` folder above the source tree."""
    env = os.environ.get("CLIPDESK_CAPTION_DATA")
    if env:
        return Path(env).expanduser()
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "captions"
        if (candidate / COCO_FILE).is_file():
            return candidate
    raise CaptionDataMissing(
        "Caption text for training was not found: set CLIPDESK_CAPTION_DATA to a folder holding "
        f"{COCO_FILE} and/or {FLICKR_FILE}."
    )


def load_split(data_dir: Path | None = None) -> CaptionSplit:
    """Read the COCO and Flickr8k caption files (either may be missing, not both)."""
    data_dir = Path(data_dir) if data_dir is not None else caption_data_dir()
    groups: dict[bool, tuple[list, list]] = {False: ([], []), True: ([], [])}  # held out? -> (captions, images)

    def add(held_out: bool, image: str, captions: list[str]) -> None:
        groups[held_out][0].append(captions)
        groups[held_out][1].append(image)

    found = False
    coco = data_dir / COCO_FILE
    if coco.is_file():
        found = True
        for entry in json.loads(coco.read_text(encoding="utf-8")):
            if entry.get("in_coco_mini"):
                continue
            add(int(entry["image_id"]) % HELD_OUT_COCO_MODULO == 0, f"coco:{entry['image_id']}", entry["captions"])
    flickr = data_dir / FLICKR_FILE
    if flickr.is_file():
        found = True
        for entry in json.loads(flickr.read_text(encoding="utf-8")):
            add(entry["split"] == "test", f"flickr8k:{entry['file']}", entry["captions"])
    if not found:
        raise CaptionDataMissing(f"No caption files ({COCO_FILE}, {FLICKR_FILE}) in {data_dir}.")
    (train, train_images), (held, held_images) = groups[False], groups[True]
    return CaptionSplit(train, held, train_images, held_images)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def normalise(text: str) -> str:
    """The form captions are compared in: lower-case words joined by single spaces."""
    return " ".join(words(text))


class Vocab:
    """Word-level vocabulary built from the training captions.

    Why words and not BPE: captions use a few thousand words, so a word vocabulary
    keeps the output layer (the largest part of a small decoder) small and the
    decoder quick on a CPU, needs no extra package, and matches the word-level
    BLEU the captions are scored with. Rare words (< ``min_count``) become ``<unk>``,
    which decoding never emits.
    """

    def __init__(self, itos: Sequence[str]) -> None:
        self.itos = list(itos)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 5, max_size: int = 8000) -> Vocab:
        counts = Counter(w for c in captions for w in words(c))
        common = [w for w, n in counts.most_common(max_size - len(SPECIALS)) if n >= min_count]
        return cls([*SPECIALS, *common])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int) -> list[int]:
        """``<bos> words… <eos>``, cut to ``max_len`` words."""
        ids = [self.stoi.get(w, UNK) for w in words(text)[:max_len]]
        return [BOS, *ids, EOS]

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.itos[i])
        return " ".join(out)
