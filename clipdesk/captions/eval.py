"""``clipdesk eval captions``: caption quality on the shared COCO photos.

BLEU-4, METEOR and CIDEr come from pycocoevalcap (the COCO caption
evaluation code) against the five references of each photo; CLIPScore
(Hessel et al. 2021, ``2.5 * max(cos, 0)``) uses the library's search model.
Text is tokenised here (lower case, words only) instead of with the Stanford
PTB tokenizer, so only METEOR needs Java; without Java it is reported as
unavailable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipdesk.captions.base import DEFAULT_CANDIDATES, PhotoItem
from clipdesk.captions.rerank import clip_score, rerank
from clipdesk.errors import ClipdeskError

log = logging.getLogger(__name__)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class CaptionEvalDataError(ClipdeskError):
    exit_code = 2


@dataclass
class CaptionSet:
    files: list[Path]
    references: list[list[str]]


def find_data() -> Path:
    """The COCO photos: $CLIPDESK_SHARED_DATA, else ``shared/data`` above the repo."""
    env = os.environ.get("CLIPDESK_SHARED_DATA")
    roots = [Path(env)] if env else [p / "shared" / "data" for p in Path(__file__).resolve().parents]
    for root in roots:
        if (root / "coco_mini" / "captions.json").is_file():
            return root / "coco_mini"
    raise CaptionEvalDataError("The COCO photos (coco_mini) were not found; pass --data DIR or set "
                               "CLIPDESK_SHARED_DATA.")


def load_set(data: Path, limit: int = 0) -> CaptionSet:
    try:
        entries = json.loads((data / "captions.json").read_text())
    except (OSError, ValueError) as exc:
        raise CaptionEvalDataError(f"Cannot read {data / 'captions.json'}: {exc}") from None
    entries = [e for e in entries if (data / "images" / e["file"]).is_file() and e.get("captions")]
    if limit:
        entries = entries[:limit]
    return CaptionSet([data / "images" / e["file"] for e in entries], [list(e["captions"]) for e in entries])


def tokenize(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def score_captions(hypotheses: Sequence[str], references: Sequence[Sequence[str]], meteor: bool = True) -> dict:
    """Corpus BLEU-1..4, METEOR (None without Java, or when not asked) and CIDEr for one hypothesis per photo."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        raise CaptionEvalDataError("Caption scores need pycocoevalcap: pip install 'clipdesk[eval]'.") from None

    gts = {i: [tokenize(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [tokenize(h) or "empty"] for i, h in enumerate(hypotheses)}  # the scorers reject empty strings
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {"bleu1": round(bleu[0], 4), "bleu4": round(bleu[3], 4), "meteor": _meteor(gts, res) if meteor else None,
            "cider": round(float(cider), 4)}


def _meteor(gts: dict, res: dict) -> float | None:
    if shutil.which("java") is None:
        log.warning("METEOR unavailable: java not found")
        return None
    try:
        from pycocoevalcap.meteor.meteor import Meteor

        value, _ = Meteor().compute_score(gts, res)  # its __del__ ends the Java process
        return round(float(value), 4)
    except Exception as exc:  # noqa: BLE001 - a broken Java setup must not lose the other metrics
        log.warning("METEOR unavailable: %s", exc)
        return None


def evaluate(captioner, engine, evalset: CaptionSet, *, n: int = DEFAULT_CANDIDATES, batch_size: int = 16,
             meteor: bool = True, progress: Callable[[int, int], None] | None = None) -> dict:
    """Caption every photo (best of ``n`` after CLIP reranking), then score against the references."""
    vectors = engine.encode_files([str(p) for p in evalset.files])
    best: list[str] = []
    clip: list[float] = []
    first: list[str] = []
    total = len(evalset.files)
    for start in range(0, total, batch_size):
        items = [PhotoItem(start + i, str(p), vectors[start + i])
                 for i, p in enumerate(evalset.files[start:start + batch_size])]
        groups = captioner.candidates(items, n)
        ranked = rerank(vectors[start:start + len(items)], groups, engine.encode_text)
        for group, ranked_group in zip(groups, ranked, strict=True):
            first.append(group[0] if group else "")
            best.append(ranked_group[0][0] if ranked_group else "")
            clip.append(clip_score(ranked_group[0][1]) if ranked_group else 0.0)
        if progress is not None:
            progress(min(start + batch_size, total), total)
    result = {
        "photos": total, "candidates": n, "caption_model": captioner.model_key, "search_model": engine.key,
        "reranked": {**score_captions(best, evalset.references, meteor), "clipscore": round(float(np.mean(clip)), 4)},
        "unranked": {**score_captions(first, evalset.references, meteor),
                     "clipscore": round(float(np.mean(_clip_scores(engine, vectors, first))), 4)},
        "examples": [{"file": p.name, "caption": c, "reference": refs[0]}
                     for p, c, refs in list(zip(evalset.files, best, evalset.references, strict=True))[:5]],
    }
    return result


def _clip_scores(engine, vectors: np.ndarray, captions: list[str]) -> list[float]:
    texts = [c or "." for c in captions]
    sims = np.sum(engine.encode_text(texts) * vectors, axis=1)
    return [clip_score(float(s)) if c else 0.0 for s, c in zip(sims, captions, strict=True)]


def format_report(result: dict) -> list[str]:
    def row(name: str, m: dict) -> str:
        meteor = "n/a" if m["meteor"] is None else f"{m['meteor']:.3f}"
        return (f"  {name:10s} BLEU-4 {m['bleu4']:.3f}  METEOR {meteor}  CIDEr {m['cider']:.3f}  "
                f"CLIPScore {m['clipscore']:.3f}")

    lines = [f"{result['photos']} COCO photos, caption model {result['caption_model']}, "
             f"best of {result['candidates']} by {result['search_model']}:",
             row("reranked", result["reranked"]), row("first", result["unranked"])]
    lines += [f"  {e['file']}: {e['caption']!r}  (ref: {e['reference']!r})" for e in result["examples"]]
    rec = result.get("text_reconstruction")
    if rec:
        lines.append(f"Text reconstruction on {rec['captions']} held-out captions (BLEU-4 / token F1): "
                     f"decoder {rec['text']['bleu4']:.3f} / {rec['text']['token_f1']:.3f}, "
                     f"projected {rec['text_projected']['bleu4']:.3f} / {rec['text_projected']['token_f1']:.3f}, "
                     f"most-frequent-caption baseline {rec['baseline']['bleu4']:.3f} / "
                     f"{rec['baseline']['token_f1']:.3f}")
    return lines
