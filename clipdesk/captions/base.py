"""What every caption backend offers, and the text clean-up they share."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

BACKENDS = ("coca", "decoder")
DEFAULT_CANDIDATES = 5
DEFAULT_MAX_LEN = 24


@dataclass(frozen=True)
class PhotoItem:
    """One photo to caption: a generative model reads the file, a decoder the stored vector."""

    photo_id: int
    path: str
    embedding: np.ndarray  # the search model's unit image vector


class Captioner(Protocol):
    model_key: str  # stored with each caption: same key, same captions

    def candidates(self, items: Sequence[PhotoItem], n: int) -> list[list[str]]:
        """Up to ``n`` candidate captions per item (an empty list for an unreadable one)."""
        ...


_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:'])")


def clean_caption(text: str) -> str:
    """Tidy decoded text: the tokenizer leaves spaces before punctuation and a trailing full stop."""
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return text.strip(" .")
