"""Text queries the search graph calibrates its depth on (``store.graph.calibrate``).

Text embeddings sit apart from image embeddings (CLIP's modality gap), which is where an HNSW graph loses
recall; a graph tuned on photo-like queries alone would look fine and miss text searches. These prompts span
what people type into a photo library, so the depth chosen holds for real queries; they are encoded by the
library's own model, once per graph calibration.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PROBE_PROMPTS = (
    "a dog", "a cat playing", "a bird on a branch", "a horse in a field", "a child laughing",
    "a group of friends at a party", "a wedding", "a birthday cake with candles", "a baby sleeping",
    "a portrait of an old man", "a selfie", "people at the beach", "a sunset over the sea", "mountains with snow",
    "a forest path", "a waterfall", "a city street at night", "a skyline", "a bridge over a river", "a church",
    "a plate of food", "a cup of coffee", "a pizza", "fruit on a table", "a car", "a bicycle", "a train station",
    "an airplane in the sky", "a boat in a harbour", "a football match", "someone skiing", "a concert on stage",
    "a living room", "a kitchen", "a garden with flowers", "a christmas tree", "fireworks", "a rainy day",
    "a screenshot of a phone", "a page of text", "a receipt", "a whiteboard", "a map", "a drawing by a child",
    "a black and white photo", "a blurry photo", "a photo taken from above", "a close-up of a flower",
)


def text_probes(encoder) -> Callable[[], np.ndarray]:
    """A callable giving ``encoder``'s vectors of the prompts (encoded on first call, then kept)."""
    kept: list[np.ndarray] = []

    def probes() -> np.ndarray:
        if not kept:
            kept.append(np.asarray(encoder.encode_text(list(PROBE_PROMPTS)), np.float32))
        return kept[0]

    return probes
