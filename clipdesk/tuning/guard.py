"""The guard: are the heads better than the base on photos they never saw? Same data, both spaces.

* Near-duplicates: each held-out photo's stored vector is a query; its
  positives are views of it made with transform kinds training never used;
  the other held-out photos, their views and a sample of the library are
  distractors. mAP@100 and R@1 (``eval.metrics``).
* Text to image: the held-out photos' pseudo-captions as queries over the
  same gallery (a text's positives: every photo it is a pseudo-caption of),
  and coco_mini's five captions per photo when that data is at hand.
  R@1/5/10.

The heads are kept only if near-duplicate mAP rises by more than
``min_gain`` and no text recall drops by more than ``max_drop`` (one point).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipdesk.eval.metrics import mean_average_precision, recall_at_k
from clipdesk.tuning.heads import Head, Heads

KS = (1, 5, 10)


@dataclass
class GuardData:
    """Base vectors of everything the guard scores; ``text_sets``: name -> (text vectors, relevance over gallery)."""

    originals: np.ndarray  # held-out photos' stored vectors
    views: np.ndarray  # their held-out views
    view_owner: np.ndarray  # row of ``originals`` each view shows
    distractors: np.ndarray  # other library photos' stored vectors
    text_sets: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    coco: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # image vectors, caption vectors, caption owner

    def sizes(self) -> dict[str, int]:
        out = {"heldout_photos": len(self.originals), "heldout_views": len(self.views),
               "distractors": len(self.distractors)}
        out.update({f"text_{name}": len(t) for name, (t, _) in self.text_sets.items()})
        if self.coco is not None:
            out["coco_images"], out["coco_captions"] = len(self.coco[0]), len(self.coco[1])
        return out


def figures(data: GuardData, heads: Heads | None = None) -> dict:
    """The guard's metrics in the base space (``heads=None``) or the tuned one."""
    def img(x: np.ndarray) -> np.ndarray:
        return x if heads is None or not len(x) else heads.image.apply(x)

    def txt(x: np.ndarray) -> np.ndarray:
        return x if heads is None or not len(x) else heads.text.apply(x)

    out: dict = {"near_duplicates": near_duplicates(data, None if heads is None else heads.image)}
    photos = img(np.concatenate([data.originals, data.distractors]))  # the text gallery: photos, no views
    for name, (texts, rel) in data.text_sets.items():
        out[name] = _recalls(txt(texts) @ photos.T, rel)
    if data.coco is not None:
        images, captions, owner = data.coco
        rel = np.zeros((len(captions), len(images)), bool)
        rel[np.arange(len(captions)), owner] = True
        out["coco_mini"] = _recalls(txt(captions) @ img(images).T, rel)
    return out


def near_duplicates(data: GuardData, head: Head | None = None) -> dict:
    """mAP@100 and R@1 of the held-out photos finding their edited copies (the base space with ``head=None``)."""
    def img(x: np.ndarray) -> np.ndarray:
        return x if head is None or not len(x) else head.apply(x)

    queries = img(data.originals)
    gallery = np.concatenate([queries, img(data.views), img(data.distractors)])
    n, v = len(queries), len(data.views)
    relevant = np.zeros((n, len(gallery)), bool)
    relevant[data.view_owner, n + np.arange(v)] = True
    exclude = np.zeros_like(relevant)
    exclude[np.arange(n), np.arange(n)] = True
    scores = queries @ gallery.T
    return {"n": n, "mAP@100": _round(mean_average_precision(scores, relevant, 100, exclude)),
            "R@1": _round(recall_at_k(scores, relevant, (1,), exclude)[1])}


def _recalls(scores: np.ndarray, relevant: np.ndarray) -> dict:
    got = recall_at_k(scores, relevant, KS)
    return {"n": int(relevant.any(1).sum()), **{f"R@{k}": _round(got[k]) for k in KS}}


def _round(x: float) -> float:
    return round(float(x), 4)


def judge(before: dict, after: dict, min_gain: float = 0.01, max_drop: float = 0.01) -> tuple[bool, list[str]]:
    """(keep?, the reasons, each a sentence with its numbers)."""
    reasons = []
    b, a = before["near_duplicates"]["mAP@100"], after["near_duplicates"]["mAP@100"]
    ok = a > b + min_gain
    reasons.append(f"near-duplicate mAP@100 on held-out photos {'rose' if a > b else 'did not rise'}: "
                   f"{b:.3f} -> {a:.3f}" + ("" if ok else f" (needs a rise of more than {min_gain:.3f})"))
    text_sets = [name for name in before if name != "near_duplicates"]
    if not text_sets:
        ok = False
        reasons.append("text search could not be checked: the library has no captions or labels to test it with "
                       "(run 'clipdesk label run' or 'clipdesk captions run' first)")
    for name in text_sets:
        for k in KS:
            b, a = before[name][f"R@{k}"], after[name][f"R@{k}"]
            if a < b - max_drop - 1e-9:
                ok = False
                reasons.append(f"text search got worse on {name.replace('_', ' ')}: R@{k} {b:.3f} -> {a:.3f} "
                               f"(at most {max_drop:.3f} lower is allowed)")
        reasons.append(f"text search on {name.replace('_', ' ')} ({before[name]['n']} queries): "
                       + ", ".join(f"R@{k} {before[name][f'R@{k}']:.3f} -> {after[name][f'R@{k}']:.3f}" for k in KS))
    return ok, reasons
