"""Text-path reconstruction: encode a held-out caption, decode it, score it against itself.

This measures the decoder with any CLIP model, even the random test model: an
embedding that carries the caption's content must decode to something closer to
the caption than a constant answer does. The constant answer (the most frequent
training caption) is scored alongside as the baseline to beat.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Sequence

from clipdesk.captions.textdata import normalise, words


def bleu4(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 (nltk) on lower-cased words; ``references[i]`` are hypothesis ``i``'s references."""
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    refs = [[words(r) for r in group] for group in references]
    hyps = [words(h) for h in hypotheses]
    # method1 smoothing only matters when a 4-gram order has no match at all (a constant
    # baseline), where unsmoothed BLEU is 0 with a warning.
    return float(corpus_bleu(refs, hyps, smoothing_function=SmoothingFunction().method1))


def token_f1(hypothesis: str, reference: str) -> float:
    """Bag-of-words F1 between two captions (SQuAD-style overlap)."""
    hyp, ref = Counter(words(hypothesis)), Counter(words(reference))
    common = sum((hyp & ref).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(hyp.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def have_bleu() -> bool:
    """Whether nltk is installed (the packaged app leaves it out; then BLEU-4 is reported as None)."""
    return importlib.util.find_spec("nltk") is not None


def score(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    f1 = [token_f1(h, r) for h, r in zip(hypotheses, references, strict=True)]
    return {
        "bleu4": round(bleu4(hypotheses, [[r] for r in references]), 4) if have_bleu() else None,
        "token_f1": round(sum(f1) / max(len(f1), 1), 4),
        "exact": round(sum(normalise(h) == normalise(r) for h, r in zip(hypotheses, references, strict=True))
                       / max(len(f1), 1), 4),
    }


def evaluate_text_reconstruction(captioner, engine, held_out_captions: Sequence[str], *,
                                 method: str = "beam", embeddings=None) -> dict:
    """Scores for the decoder (text vectors as they are, and projected onto the memory) and the baseline.

    Returns ``{"captions", "method", "text", "text_projected", "baseline", "baseline_caption",
    "examples"}``; each score block holds ``bleu4`` (None without nltk), ``token_f1`` and ``exact`` (share decoded
    word for word). ``embeddings`` may pass the captions' text vectors when already computed.
    """
    refs = list(held_out_captions)
    vecs = engine.encode_text(refs) if embeddings is None else embeddings
    direct = [c[0] if c else "" for c in captioner.caption_embeddings(vecs, n=1, method=method, project=False)]
    projected = [c[0] if c else "" for c in captioner.caption_embeddings(vecs, n=1, method=method, project=True)]
    baseline = captioner.most_frequent_caption
    return {
        "captions": len(refs),
        "method": method,
        "text": score(direct, refs),
        "text_projected": score(projected, refs),
        "baseline": score([baseline] * len(refs), refs),
        "baseline_caption": baseline,
        "examples": [{"reference": r, "decoded": d, "projected": p}
                     for r, d, p in list(zip(refs, direct, projected, strict=True))[:5]],
    }
