"""Caption the library (or chosen photos) in the background.

Resumable by construction: each batch commits its captions, and a later run
skips photos that already carry an automatic caption from the same model,
made after the photo's current embedding (a changed photo is captioned
again). Hand-written captions are separate rows and are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import select

from clipdesk.captions.base import DEFAULT_CANDIDATES, Captioner, PhotoItem
from clipdesk.captions.rerank import rerank
from clipdesk.captions.store import write_auto_captions
from clipdesk.crashpoints import crash_point
from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress
from clipdesk.store.db import Library
from clipdesk.store.models import Caption, Embedding, Photo
from clipdesk.store.vectors import load_vectors

PHASE = "captioning"


class TextEncoder(Protocol):
    key: str

    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class CaptionReport:
    photos: int = 0  # present photos embedded with the search model (in the selection)
    todo: int = 0  # of which needed a caption this run
    captioned: int = 0
    failed: int = 0  # unreadable files, or no candidate at all
    cancelled: bool = False


def photos_to_caption(library: Library, model_key: str, search_key: str,
                      photo_ids: Iterable[int] | None = None, force: bool = False) -> list[int]:
    """Embedded, present photos lacking a current caption from ``model_key``."""
    stmt = (select(Embedding.photo_id, Embedding.created_at, Caption.created_at)
            .join(Photo, Photo.id == Embedding.photo_id)
            .outerjoin(Caption, (Caption.photo_id == Embedding.photo_id) & (Caption.source == "auto")
                       & (Caption.model_key == model_key))
            .where(Embedding.model_key == search_key, Photo.missing_since.is_(None))
            .order_by(Embedding.photo_id))
    wanted = None if photo_ids is None else {int(i) for i in photo_ids}
    with library.session() as s:
        rows = s.execute(stmt).all()
    return [pid for pid, embedded, captioned in rows
            if (wanted is None or pid in wanted) and (force or captioned is None or captioned < embedded)]


def caption_library(library: Library, captioner: Captioner, encoder: TextEncoder,
                    photo_ids: Iterable[int] | None = None, *, n: int = DEFAULT_CANDIDATES, batch: int = 16,
                    force: bool = False, progress: ProgressCallback = no_progress,
                    cancel: CancelToken | None = None) -> CaptionReport:
    """Write the best of ``n`` reranked candidates as each photo's automatic caption.

    ``encoder`` is the library's search model: its stored image vectors and
    its text encoder rank the candidates. ``force`` re-captions photos that
    already have a current caption from this model.
    """
    cancel = cancel or CancelToken()
    photo_ids = None if photo_ids is None else list(photo_ids)
    report = CaptionReport()
    vectors = load_vectors(library, encoder.key)
    report.photos = len(vectors) if photo_ids is None else len(set(photo_ids) & set(vectors.ids.tolist()))
    todo = photos_to_caption(library, captioner.model_key, encoder.key, photo_ids, force)
    report.todo = len(todo)
    progress(Progress(PHASE, 0, report.todo))
    for start in range(0, len(todo), batch):
        if cancel.checkpoint():
            report.cancelled = True
            break
        ids = [pid for pid in todo[start:start + batch] if vectors.row_of(pid) is not None]
        with library.session() as s:  # per batch: one IN list for 100k photos is too many SQL variables
            paths = dict(s.execute(select(Photo.id, Photo.path).where(Photo.id.in_(ids))).all())
        items = [PhotoItem(pid, paths[pid], vectors.matrix[vectors.row_of(pid)]) for pid in ids]
        groups = captioner.candidates(items, n)
        ranked = rerank(np.stack([it.embedding for it in items]), groups, encoder.encode_text) if items else []
        results = {it.photo_id: ranked_group[0] for it, ranked_group in zip(items, ranked, strict=True)
                   if ranked_group}
        report.failed += len(todo[start:start + batch]) - len(results)
        def write(s, results=results) -> None:
            write_auto_captions(s, results, captioner.model_key)
            s.flush()  # the captions reach SQLite uncommitted: what a crash here must undo
            crash_point("captions.batch-written")

        library.write(write)  # the app's writer lane; inline in the CLI
        crash_point("captions.batch-committed")
        report.captioned += len(results)
        progress(Progress(PHASE, min(start + batch, len(todo)), report.todo, report.failed))
    return report
