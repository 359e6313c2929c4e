"""Matching what people type against what OCR reads.

OCR on real photos confuses look-alike characters ("INV0ICE") and drops the
spaces between words ("Zimmer214", "TOTAL58.20"). Both the stored text and
the query go through the same ``fold``:

* case and accents are folded (NFKD, combining marks dropped, lower case);
* look-alikes become one character: ``0 o`` -> ``o``, ``1 l i`` -> ``l``,
  ``5 s`` -> ``s``, ``8 b`` -> ``b`` (``CONFUSIONS``). Small on purpose: each
  pair makes unrelated words collide, and these four are what the shipped
  models actually get wrong on photos;
* spaces and punctuation are dropped: a line is "squashed" to its letters and
  digits, remembering where each token (a run between spaces/punctuation)
  started, so ``zimmer 214`` and "Zimmer214" squash alike.

A query word of ``LONG_WORD`` (4) characters or more matches anywhere in a
squashed line ("invoice" in "INV0ICE#7391"). A shorter word must start or end
a token ("214" ends "Zimmer214", "58" ends "TOTAL58"), and a one-character word
must be a whole token, so "cat" finds neither "CERTIFICATE" nor "educate" but
does find "Cat" or "CAT5". A quoted phrase is squashed whole and matches as one
contiguous run of characters within a line, spaces optional, by the same rule.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

CONFUSIONS = {"0": "o", "1": "l", "i": "l", "5": "s", "8": "b"}
LONG_WORD = 4


@dataclass(frozen=True)
class Squashed:
    """A line's letters and digits, folded, with where they came from."""

    text: str
    origin: tuple[int, ...]  # for each character of ``text``, its index in the original line
    token_starts: frozenset[int]  # indices in ``text`` where a token begins
    token_ends: frozenset[int]  # indices in ``text`` just past a token's end


@lru_cache(maxsize=8192)  # per character: a search folds every candidate line, in Python
def fold_char(c: str) -> str:
    """``c`` folded: accents gone, lower case, look-alikes merged; "" for spaces and punctuation."""
    out = []
    for d in unicodedata.normalize("NFKD", c):
        if unicodedata.combining(d):
            continue
        for e in d.lower():
            if e.isalnum():
                out.append(CONFUSIONS.get(e, e))
    return "".join(out)


@lru_cache(maxsize=65536)
def squash(line: str) -> Squashed:
    chars: list[str] = []
    origin: list[int] = []
    starts: set[int] = set()
    ends: set[int] = set()
    in_token = False
    for i, c in enumerate(line):
        folded = fold_char(c)
        if not folded:
            if in_token:
                ends.add(len(chars))
            in_token = False
            continue
        if not in_token:
            starts.add(len(chars))
            in_token = True
        chars.extend(folded)
        origin.extend([i] * len(folded))
    if in_token:
        ends.add(len(chars))
    return Squashed("".join(chars), tuple(origin), frozenset(starts), frozenset(ends))


def fold_query(term: str) -> str:
    """A query word or phrase as it is matched: folded and squashed."""
    return squash(term).text


def find(line: Squashed, needle: str) -> list[tuple[int, int]]:
    """Where ``needle`` (already folded) matches in ``line``: (start, end) in squashed indices."""
    if not needle:
        return []
    spans = []
    at = line.text.find(needle)
    while at >= 0:
        end = at + len(needle)
        if len(needle) >= LONG_WORD:
            ok = True
        elif len(needle) == 1:
            ok = at in line.token_starts and end in line.token_ends
        else:
            ok = at in line.token_starts or end in line.token_ends
        if ok:
            spans.append((at, end))
        at = line.text.find(needle, at + 1)
    return spans


def holds(lines: list[str], needle: str) -> bool:
    return any(find(squash(t), needle) for t in lines)


def index_text(lines: list[str]) -> str:
    """What the trigram index holds for a photo: its squashed lines, space-separated.

    Squashed lines hold no spaces and neither do folded query terms, so an
    index hit never straddles two lines.
    """
    return " ".join(s for s in (squash(t).text for t in lines) if s)
