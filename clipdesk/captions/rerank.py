"""Pick the candidate caption CLIP agrees with most (the CLIP-reward idea).

Scores are cosines between the photo's stored image vector and each
candidate's text vector under the library's search model; the winner's
cosine is stored as the caption's confidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

TextEncoder = Callable[[Sequence[str]], np.ndarray]


def rerank(image_vectors: np.ndarray, candidates: Sequence[Sequence[str]],
           encode_text: TextEncoder) -> list[list[tuple[str, float]]]:
    """Each photo's candidates with their cosine, best first (one text batch for all)."""
    flat = [text for group in candidates for text in group]
    if not flat:
        return [[] for _ in candidates]
    vectors = encode_text(flat)
    out, start = [], 0
    for image, group in zip(image_vectors, candidates, strict=True):
        sims = vectors[start:start + len(group)] @ image
        start += len(group)
        out.append(sorted(zip(group, (float(s) for s in sims), strict=True), key=lambda e: -e[1]))
    return out


def clip_score(cosine: float, w: float = 2.5) -> float:
    """CLIPScore (Hessel et al. 2021): ``w * max(cos, 0)``."""
    return w * max(cosine, 0.0)
