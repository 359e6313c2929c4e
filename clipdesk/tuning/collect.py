"""Encoding what tuning learns from and is judged on: views, pseudo-captions, coco_mini; the classes.

Only here does tuning run the model: views of a sample of photos and of the
held-out photos (through ``engine.encode_pixels``), texts, and the photos
that lack a base vector. Everything after works on vectors. Each function reports progress and returns None
when cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from clipdesk.imageio import ImageReadError, read_photo
from clipdesk.jobs import CancelToken, Progress, ProgressCallback
from clipdesk.store.db import Library
from clipdesk.store.models import Embedding, Photo, utcnow
from clipdesk.tuning.heads import TUNED_MARK
from clipdesk.tuning.views import ViewSource, kinds_for

ENCODE_CHUNK = 64  # images per encode call: a cancel is honoured within a few seconds on 2 cores


@dataclass
class Views:
    vectors: np.ndarray  # float32, one row per view
    owner: np.ndarray  # index into the photos passed in, per view
    unreadable: list[int]  # indexes of photos that could not be read
    unviewed: list[int] = field(default_factory=list)  # indexes of photos the time budget left out

    def readable(self, n: int) -> np.ndarray:
        """Indexes of the ``n`` photos passed in that have views."""
        return np.setdiff1d(np.arange(n), self.unreadable + self.unviewed)

    def subset(self, keep: np.ndarray) -> Views:
        """The views of the photos at ``keep`` (readable ones), owners renumbered to positions in ``keep``."""
        position = np.full(int(max(self.owner.max(initial=-1), keep.max(initial=-1))) + 1, -1)
        position[keep] = np.arange(len(keep))
        mask = position[self.owner] >= 0
        return Views(self.vectors[mask], position[self.owner[mask]], [])


def encode_views(engine, source: ViewSource, photos: Sequence[tuple[int, str]], kinds: Sequence[str], per_photo: int,
                 seed: int, phase: str, progress: ProgressCallback, cancel: CancelToken,
                 budget_s: float | None = None, at_least: int = 0) -> Views | None:
    """``per_photo`` views of each (id, path), kinds rotating through ``kinds``.

    ``budget_s``: stop taking photos once encoding has taken this long and
    ``at_least`` photos have views (the sample sized to the machine: a
    laptop's CPU gets fewer photos than a GPU); photos after the stop are
    are left out of ``Views.readable`` like unreadable ones, and counted
    apart (``Views.unviewed``).
    """
    started = time.perf_counter()
    vectors, owner, unreadable, unviewed = [], [], [], []
    pending: list[np.ndarray] = []
    pending_owner: list[int] = []

    def flush() -> None:
        if pending:
            vectors.append(np.asarray(engine.encode_pixels(np.concatenate(pending)), np.float32))
            owner.extend(pending_owner)
            pending.clear()
            pending_owner.clear()

    progress(Progress(phase, 0, len(photos)))
    for i, (photo_id, path) in enumerate(photos):
        try:
            pixels = source.render(photo_id, path, kinds_for(i, kinds, per_photo), seed)
        except (ImageReadError, OSError):
            unreadable.append(i)  # a photo gone or damaged since indexing: one fewer example
            continue
        pending.append(pixels)
        pending_owner.extend([i] * len(pixels))
        if sum(len(p) for p in pending) >= ENCODE_CHUNK:
            flush()
            progress(Progress(phase, i + 1, len(photos), len(unreadable)))
            if cancel.checkpoint():
                return None
            if budget_s is not None and i + 1 >= at_least and time.perf_counter() - started > budget_s:
                unviewed = list(range(i + 1, len(photos)))
                break
    flush()
    progress(Progress(phase, len(photos), len(photos), len(unreadable)))
    dim = vectors[0].shape[1] if vectors else 0
    return Views(np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32),
                 np.asarray(owner, np.int64), unreadable, unviewed)


def encode_batched(encode, items: Sequence, phase: str, progress: ProgressCallback, cancel: CancelToken,
                   chunk: int = 256) -> np.ndarray | None:
    """``encode`` (``engine.encode_text`` or ``encode_files``) over ``items`` in chunks, with progress."""
    out = []
    progress(Progress(phase, 0, len(items)))
    for start in range(0, len(items), chunk):
        out.append(np.asarray(encode(list(items[start : start + chunk])), np.float32))
        progress(Progress(phase, min(start + chunk, len(items)), len(items)))
        if cancel.checkpoint():
            return None
    return np.concatenate(out) if out else None


def image_classes(matrix: np.ndarray, train_rows: np.ndarray, views: Views,
                  clusters: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """(vectors, class per vector, clusters added) for ArcFace; ``views`` of the photos at ``train_rows``.

    A training photo's class holds its stored vector and its views. A
    near-duplicate cluster is a class of its members' stored vectors; one that
    holds a training photo joins that photo's class instead of competing with it.
    """
    class_of_row = {int(r): c for c, r in enumerate(train_rows)}
    xs = [matrix[train_rows], views.vectors]
    ys = [np.arange(len(train_rows)), views.owner]
    n_classes, added = len(train_rows), 0
    for members in clusters:
        known = [class_of_row[int(r)] for r in members if int(r) in class_of_row]
        rest = np.asarray([r for r in members if int(r) not in class_of_row], np.int64)
        if not len(rest):
            continue
        if known:
            label = known[0]
        else:
            label, n_classes, added = n_classes, n_classes + 1, added + 1
        xs.append(matrix[rest])
        ys.append(np.full(len(rest), label, np.int64))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys), added


def text_relevance(texts: Sequence[str], gallery_ids: Sequence[int], captions: dict[int, list[str]]) -> np.ndarray:
    """texts x gallery: True where the text is one of that photo's pseudo-captions."""
    column = {t: i for i, t in enumerate(texts)}
    rel = np.zeros((len(texts), len(gallery_ids)), bool)
    for j, pid in enumerate(gallery_ids):
        for t in captions.get(int(pid), ()):
            if t in column:
                rel[column[t], j] = True
    return rel


def backfill_base(library: Library, engine, progress: ProgressCallback, cancel: CancelToken) -> int | None:
    """Base vectors for photos indexed while a tuning was on (they got tuned vectors only); None if cancelled.

    Training and a new tuning's vectors derive from the base vectors, so
    these photos are encoded once more with the base model first.
    """
    have = select(Embedding.photo_id).where(Embedding.model_key == engine.key)
    tuned = select(Embedding.photo_id).where(Embedding.model_key.contains(TUNED_MARK))
    with library.session() as s:
        todo = s.execute(select(Photo.id, Photo.path).where(Photo.missing_since.is_(None), Photo.id.in_(tuned),
                                                            Photo.id.not_in(have)).order_by(Photo.id)).all()
    spec, done = engine.input_spec(), 0
    progress(Progress("base vectors", 0, len(todo)))
    for start in range(0, len(todo), ENCODE_CHUNK):
        read = []
        for pid, path in todo[start : start + ENCODE_CHUNK]:
            try:
                read.append((pid, read_photo(path, spec.size, spec.squash)))
            except (ImageReadError, OSError):
                continue  # gone or damaged: the next index run deals with it
        if read:
            vectors = engine.encode_pixels(np.stack([info.pixels for _, info in read]))
            rows = [Embedding(photo_id=pid, model_key=engine.key, dim=len(v), vector=v.astype("<f2").tobytes(),
                              content_hash=info.content_hash, created_at=utcnow())
                    for (pid, info), v in zip(read, vectors, strict=True)]
            library.write(lambda s, rows=rows: s.add_all(rows))
            done += len(rows)
        progress(Progress("base vectors", min(start + ENCODE_CHUNK, len(todo)), len(todo)))
        if cancel.checkpoint():
            return None
    return done
