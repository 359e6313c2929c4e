"""``clipdesk eval retrieval``: every retrieval measure for one model, on the shared data and the user's own.

Sections (JSON names; ``--sections`` takes the short names):

* ``text`` -> ``text_to_image``: R@1/5/10 of COCO captions finding their photo (and the reverse);
* ``near`` -> ``near_duplicates``: mAP@100 and R@1 on the benchmark of ``near_dup.py`` over the
  shared photos (COCO and the ImageNet sample);
* ``zero`` -> ``zero_shot``: ImageNet-sample top-1/top-5 with ``"a photo of a {class}"`` prompts;
* ``folders``: GPR1200 mAP over a folder of class sub-folders;
* ``pairs``: a pairs file against the library's photos (``pairs.py``);
* ``labels`` -> ``labels_knn``: k-NN accuracy of the library's accepted labels (``knn.py``).

A section not asked for, or without data, is ``{"skipped": reason}``. Each
photo is encoded once per run even when two sections use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipdesk.eval import data as datasets
from clipdesk.eval import sections
from clipdesk.eval.encode import Embedder
from clipdesk.eval.knn import DEFAULT_K, labels_knn_section
from clipdesk.eval.near_dup import build_near_duplicate_set
from clipdesk.eval.pairs import pairs_section, parse_pairs
from clipdesk.eval.transforms import TRANSFORMS
from clipdesk.store.db import Library

SECTIONS = {"text": "text_to_image", "near": "near_duplicates", "zero": "zero_shot", "folders": "folders",
            "pairs": "pairs", "labels": "labels_knn"}
PROMPT = "a photo of a {name}"


@dataclass
class RetrievalOptions:
    """What to measure, and on which data (defaults: every section, the shared data, 100 near-dup queries)."""

    sections: tuple[str, ...] = tuple(SECTIONS)
    data: Path | None = None  # the shared data folder; default: found as the other harnesses find it
    limit: int = 0  # at most this many photos per data set (0: all)
    near_dup_queries: int = 100
    seed: int = 0
    transforms: tuple[str, ...] = tuple(TRANSFORMS)
    folders: Path | None = None
    pairs: Path | None = None
    knn_k: int = DEFAULT_K


def parse_sections(text: str) -> tuple[str, ...]:
    """``"text,near"`` -> ("text", "near"); JSON names are accepted too. ValueError on an unknown one."""
    names = {v: k for k, v in SECTIONS.items()}
    out = []
    for word in (w.strip() for w in text.split(",") if w.strip()):
        short = word if word in SECTIONS else names.get(word)
        if short is None:
            raise ValueError(f"unknown section {word!r}; choose from {', '.join(SECTIONS)}")
        out.append(short)
    return tuple(dict.fromkeys(out))


def evaluate_retrieval(encoder, options: RetrievalOptions, library: Library | None, embedder: Embedder) -> dict:
    """Run the asked-for sections with ``encoder`` (through ``embedder``); the report ``eval retrieval`` prints."""
    started = time.perf_counter()
    run = _Run(encoder, options, library, embedder)
    result: dict = {"model_key": encoder.key, "precision": encoder.precision, "sections": list(options.sections)}
    for short, name in SECTIONS.items():
        result[name] = getattr(run, short)() if short in options.sections else {"skipped": "not asked for (--sections)"}
    result["data"] = run.used
    result["unreadable"] = [{"path": p, "reason": why} for p, why in sorted(run.unreadable.items())]
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


class _Run:
    """One evaluation: a method per section (named by its short name), and what the sections share."""

    def __init__(self, encoder, options: RetrievalOptions, library: Library | None, embedder: Embedder) -> None:
        self.encoder, self.options, self.library, self.embedder = encoder, options, library, embedder
        self.root = datasets.shared_data_root(options.data)
        self.used: dict = {}  # section -> the data it measured
        self.unreadable: dict[str, str] = {}
        self._cache: dict[str, np.ndarray | None] = {}  # path -> vector (None: unreadable): each photo encoded once

    def files(self, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, ok) of ``paths``; an unreadable photo is listed in the report and left out by the caller."""
        todo = [p for p in dict.fromkeys(map(str, paths)) if p not in self._cache]
        got = self.embedder.embed(todo)
        self.unreadable.update(got.errors)
        self._cache.update((p, v if good else None) for p, v, good in zip(todo, got.vectors, got.ok, strict=True))
        return _stack([self._cache[str(p)] for p in paths], self.encoder.dim)

    def shared(self, name: str) -> Path | None:
        return self.root / name if self.root is not None and (self.root / name).is_dir() else None

    def text(self) -> dict:
        if (folder := self.shared(datasets.COCO)) is None:
            return {"skipped": _no_shared(datasets.COCO)}
        coco = datasets.load_coco(folder, self.options.limit)
        vectors, ok = self.files(coco.files)
        captions = [caps for caps, good in zip(coco.captions, ok, strict=True) if good]
        owner = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
        texts = [t for caps in captions for t in caps]
        self.used["text_to_image"] = datasets.describe(coco.files, folder) | {"captions": len(texts)}
        return sections.text_to_image(vectors[ok], _texts(self.encoder, texts), owner)

    def near(self) -> dict:
        photos: list[Path] = []
        if (coco := self.shared(datasets.COCO)) is not None:
            photos += datasets.load_coco(coco, self.options.limit).files
        if (imagenet := self.shared(datasets.IMAGENET)) is not None:
            photos += datasets.load_imagenet(imagenet, self.options.limit).files
        if not photos:
            return {"skipped": _no_shared(f"{datasets.COCO} or {datasets.IMAGENET}")}
        o = self.options
        bench = build_near_duplicate_set(photos, o.near_dup_queries, o.seed, o.transforms)
        originals, ok = self.files(list(bench.photos))
        views = self.embedder.embed([it.source for it in bench.items[len(bench.photos):]])
        view_vectors, _ = _stack([v if good else None for v, good in zip(views.vectors, views.ok, strict=True)],
                                 self.encoder.dim)
        self.unreadable.update(views.errors)
        self.used["near_duplicates"] = bench.describe() | {"paths": sorted({str(p.parent) for p in bench.photos})}
        return sections.near_duplicates(np.concatenate([originals, view_vectors]), bench,
                                        np.concatenate([ok, views.ok]))

    def zero(self) -> dict:
        if (folder := self.shared(datasets.IMAGENET)) is None:
            return {"skipped": _no_shared(datasets.IMAGENET)}
        sample = datasets.load_imagenet(folder, self.options.limit)
        keys = list(sample.classes)
        row = {k: i for i, k in enumerate(keys)}
        vectors, ok = self.files(sample.files)
        truth = np.array([row[t] for t in sample.truth], np.int64)
        prompts = [PROMPT.format(name=sample.classes[k]) for k in keys]
        self.used["zero_shot"] = datasets.describe(sample.files, folder) | {"prompt": PROMPT, "classes": len(keys)}
        return sections.zero_shot(vectors[ok], _texts(self.encoder, prompts), truth[ok])

    def folders(self) -> dict:
        if self.options.folders is None:
            return {"skipped": "no --folders DIR given"}
        found = datasets.load_folders(self.options.folders, self.options.limit)
        if len(found.files) < 2:
            return {"skipped": f"fewer than 2 photos in class sub-folders of {self.options.folders}"}
        self.used["folders"] = datasets.describe(found.files, self.options.folders)
        vectors, ok = self.files(found.files)
        truth = [t for t, good in zip(found.truth, ok, strict=True) if good]
        return sections.folders(vectors[ok], truth) | {"unreadable": int((~ok).sum())}

    def pairs(self) -> dict:
        if self.options.pairs is None:
            return {"skipped": "no --pairs FILE given"}
        if self.library is None:
            return {"skipped": "no library"}
        try:
            parsed = parse_pairs(self.options.pairs)
        except OSError as exc:
            why = exc.strerror or exc
            raise datasets.RetrievalDataError(f"Cannot read --pairs {self.options.pairs}: {why}") from None
        self.used["pairs"] = {"path": str(self.options.pairs), "lines": len(parsed.pairs) + len(parsed.skipped),
                              "library": str(self.library.root)}
        return pairs_section(self.library, self.encoder.key, self.embedder, parsed)

    def labels(self) -> dict:
        if self.library is None:
            return {"skipped": "no library"}
        return labels_knn_section(self.library, self.encoder.key, self.options.knn_k)


def _stack(rows: list[np.ndarray | None], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, ok): the rows stacked, zeros where a row is None (unreadable; ok False there)."""
    ok = np.array([r is not None for r in rows], bool)
    vectors = np.zeros((len(rows), dim), np.float32)
    if ok.any():
        vectors[ok] = np.stack([r for r in rows if r is not None])
    return vectors, ok


def _texts(encoder, texts: list[str]) -> np.ndarray:
    return np.asarray(encoder.encode_text(texts), np.float32)


def _no_shared(what: str) -> str:
    return f"{what} not found: pass --data DIR (the shared data folder) or set CLIPDESK_SHARED_DATA"
