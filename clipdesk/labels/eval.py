"""``clipdesk eval labels``: how well does label scoring work on real photos?

Runs on the shared ImageNet sample (one photo per class, ``labels.json`` maps
file -> class name, ``wnids.json`` file -> WordNet id). Two scorers are compared
on the same image vectors:

* baseline: one prompt per class, ``"a photo of a {class}"``;
* descriptors: the mean similarity over ``"a photo of a {class}, which has
  {descriptor}"`` prompts, with descriptors from
  ``resources/eval/imagenet_descriptors.yaml`` (classes without any fall back
  to the baseline prompt, so coverage is reported).

Abstention: predictions are sorted by their confidence margin (top-1 score
minus top-2 score) and precision is reported at each coverage level, i.e.
"if clipdesk only labelled its N % most confident photos, how many would be
right?". Classes are keyed by WordNet id: two ImageNet names repeat ("crane"
the bird and the machine, "maillot" twice).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from clipdesk.errors import ClipdeskError

DESCRIPTORS = (Path(os.environ.get("CLIPDESK_RESOURCES") or Path(__file__).resolve().parents[2] / "resources")
               / "eval" / "imagenet_descriptors.yaml")
COVERAGES = (100, 90, 80, 70, 60, 50, 40, 30, 20, 10)
BASE_PROMPT = "a photo of a {name}"
DESCRIPTOR_PROMPT = "a photo of a {name}, which has {descriptor}"


class EvalDataError(ClipdeskError):
    exit_code = 2


@dataclass
class EvalSet:
    files: list[Path]
    truth: list[str]  # wnid per file
    classes: dict[str, str]  # wnid -> class name, all classes (the candidates)


def find_data() -> Path:
    """The ImageNet sample: $CLIPDESK_SHARED_DATA, else ``shared/data`` above the repo."""
    env = os.environ.get("CLIPDESK_SHARED_DATA")
    roots = [Path(env)] if env else [p / "shared" / "data" for p in Path(__file__).resolve().parents]
    for root in roots:
        if (root / "imagenet_sample" / "labels.json").is_file():
            return root / "imagenet_sample"
    raise EvalDataError("The ImageNet sample was not found; pass --data DIR or set CLIPDESK_SHARED_DATA.")


def load_set(data: Path, limit: int = 0) -> EvalSet:
    try:
        names = json.loads((data / "labels.json").read_text(encoding="utf-8"))
        wnids = json.loads((data / "wnids.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvalDataError(f"Cannot read labels.json/wnids.json in {data}: {exc}") from None
    classes = {wnids[f]: names[f] for f in sorted(names)}
    files = sorted(f for f in names if (data / f).is_file())
    if limit:
        files = files[:limit]
    return EvalSet([data / f for f in files], [wnids[f] for f in files], classes)


def load_descriptors(path: Path = DESCRIPTORS) -> dict[str, list[str]]:
    """wnid -> descriptor phrases; entries are ``{name: ..., descriptors: [...]}``."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {wnid: list(entry.get("descriptors") or []) for wnid, entry in data.items() if isinstance(entry, dict)}


def class_text_vectors(engine, classes: dict[str, str], descriptors: dict[str, list[str]] | None) -> np.ndarray:
    """One vector per class (rows in ``classes`` order). With descriptors, the
    mean of the descriptor prompt vectors: its dot product with an image is the
    mean similarity over the prompts."""
    prompts, owner = [], []
    for row, (wnid, name) in enumerate(classes.items()):
        phrases = (descriptors or {}).get(wnid)
        texts = [DESCRIPTOR_PROMPT.format(name=name, descriptor=d) for d in phrases] if phrases else [
            BASE_PROMPT.format(name=name)]
        prompts += texts
        owner += [row] * len(texts)
    vectors = np.asarray(engine.encode_text(prompts), np.float32)  # one call: the engine batches
    owner_arr = np.array(owner)
    sums = np.zeros((len(classes), vectors.shape[1]), np.float32)
    np.add.at(sums, owner_arr, vectors)
    return sums / np.bincount(owner_arr, minlength=len(classes))[:, None]


def topk_accuracy(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean(np.any(top == truth[:, None], axis=1))) if len(truth) else 0.0


def margins(scores: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 score per row: how sure the prediction is."""
    if scores.shape[1] < 2:
        return np.full(len(scores), np.inf)
    part = -np.sort(-scores, axis=1)
    return part[:, 0] - part[:, 1]


def precision_at_coverage(confidence: np.ndarray, correct: np.ndarray,
                          coverages: Sequence[int] = COVERAGES) -> dict[int, float]:
    """Precision of the ``c`` % most confident predictions, for each ``c``.

    Ties keep input order (stable sort), so a test can state the answer.
    """
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    ok = np.asarray(correct, bool)[order]
    out = {}
    for c in coverages:
        n = max(1, math.ceil(len(ok) * c / 100)) if len(ok) else 0
        out[c] = float(ok[:n].mean()) if n else 0.0
    return out


def score_method(image_vectors: np.ndarray, class_vectors: np.ndarray, truth: np.ndarray) -> dict:
    scores = image_vectors @ class_vectors.T
    correct = np.argmax(scores, axis=1) == truth
    return {
        "top1": topk_accuracy(scores, truth, 1),
        "top5": topk_accuracy(scores, truth, 5),
        "precision_at_coverage": precision_at_coverage(margins(scores), correct),
    }


def embed(engine, files: Sequence[Path], batch_size: int = 32,
          progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    out = []
    for start in range(0, len(files), batch_size):
        out.append(np.asarray(engine.encode_files(files[start:start + batch_size]), np.float32))
        if progress:
            progress(min(start + batch_size, len(files)), len(files))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def evaluate(engine, evalset: EvalSet, descriptors: dict[str, list[str]], batch_size: int = 32,
             progress: Callable[[int, int], None] | None = None) -> dict:
    wnids = list(evalset.classes)
    index = {w: i for i, w in enumerate(wnids)}
    truth = np.array([index[w] for w in evalset.truth], np.int64)
    images = embed(engine, evalset.files, batch_size, progress)
    covered = sum(1 for w in wnids if descriptors.get(w))
    return {
        "images": len(evalset.files),
        "classes": len(wnids),
        "descriptor_coverage": covered,
        "baseline": score_method(images, class_text_vectors(engine, evalset.classes, None), truth),
        "descriptors": score_method(images, class_text_vectors(engine, evalset.classes, descriptors), truth),
    }


def format_report(result: dict, model: str = "") -> list[str]:
    b, d = result["baseline"], result["descriptors"]
    lines = [
        f"Label eval{f' ({model})' if model else ''}: {result['images']} images, {result['classes']} classes; "
        f"descriptors for {result['descriptor_coverage']}/{result['classes']} classes.",
        "",
        f"{'method':<12} {'top-1':>7} {'top-5':>7}",
        f"{'baseline':<12} {b['top1']:>7.1%} {b['top5']:>7.1%}",
        f"{'descriptors':<12} {d['top1']:>7.1%} {d['top5']:>7.1%}",
        "",
        "Precision when abstaining on low-margin (top-1 - top-2) predictions:",
        f"{'coverage':>9} {'baseline':>9} {'descr.':>9}",
    ]
    for c in COVERAGES:
        lines.append(f"{c:>8}% {b['precision_at_coverage'][c]:>9.1%} {d['precision_at_coverage'][c]:>9.1%}")
    return lines
