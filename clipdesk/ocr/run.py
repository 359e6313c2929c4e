"""The OCR pass over the library: resumable, incremental, cancellable.

A photo is done when its ``ocr_results`` row carries the current engine key
and the photo's current content hash; anything else (new, changed, read with
another model) is read again. Each batch commits on its own, so a run killed
midway keeps its batches and the next run continues after them. A photo
without text is stored as ``none`` and a broken file as ``failed`` with its
reason: neither is read again until its content (or the engine) changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from clipdesk.imageio import ImageReadError
from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress
from clipdesk.ocr.store import write_results
from clipdesk.store.db import Library
from clipdesk.store.models import OcrResult as OcrRow
from clipdesk.store.models import Photo

PHASE = "reading text"


@dataclass
class OcrReport:
    photos: int = 0  # present photos (in the selection)
    todo: int = 0  # of which needed reading this run
    read: int = 0
    with_text: int = 0
    failed: int = 0
    lines: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    failures: list[tuple[str, str]] | None = None  # (path, reason), this run's


def photos_to_read(library: Library, engine_key: str, photo_ids: Iterable[int] | None = None,
                   force: bool = False) -> tuple[int, list[tuple[int, str]]]:
    """(present photos, [(id, path)] of those lacking a current OCR result), by id."""
    stmt = (select(Photo.id, Photo.path, Photo.content_hash, OcrRow.engine_key, OcrRow.content_hash)
            .outerjoin(OcrRow, OcrRow.photo_id == Photo.id)
            .where(Photo.missing_since.is_(None)).order_by(Photo.id))
    wanted = None if photo_ids is None else {int(i) for i in photo_ids}
    with library.session() as s:
        rows = [r for r in s.execute(stmt).all() if wanted is None or r[0] in wanted]
    todo = [(pid, path) for pid, path, photo_hash, key, done_hash in rows
            if force or key != engine_key or done_hash != photo_hash]
    return len(rows), todo


def ocr_library(library: Library, engine, photo_ids: Iterable[int] | None = None, *, batch: int = 8,
                force: bool = False, progress: ProgressCallback = no_progress,
                cancel: CancelToken | None = None) -> OcrReport:
    """Read the words in every present photo not yet read with ``engine`` (an ``OcrEngine``)."""
    import time

    cancel = cancel or CancelToken()
    key = engine.key
    report = OcrReport(failures=[])
    report.photos, todo = photos_to_read(library, key, photo_ids, force)
    report.todo = len(todo)
    start_time = time.perf_counter()
    progress(Progress(PHASE, 0, report.todo))
    read: dict = {}
    failed: dict = {}
    for done, (pid, path) in enumerate(todo):
        # Checked per photo (~1 s each on a CPU), not per batch: cancel and pause answer within one photo.
        if cancel.checkpoint():
            report.cancelled = True
            break
        try:
            read[pid] = engine.read_file(path)
        except (ImageReadError, OSError) as exc:
            # Recorded against the stored hash: the next run skips it until the file changes.
            reason = str(exc) if isinstance(exc, ImageReadError) else (exc.strerror or str(exc))
            failed[pid] = (_stored_hash(library, pid), reason)
            report.failures.append((path, reason))
        if len(read) + len(failed) >= batch:
            _commit(library, key, read, failed, report)
            read, failed = {}, {}
        # Per photo too: on the app's inference lane this is where a search's text encoding gets its turn.
        progress(Progress(PHASE, done + 1, report.todo, report.failed + len(failed)))
    _commit(library, key, read, failed, report)  # what a cancel left in the last batch is kept too
    report.seconds = round(time.perf_counter() - start_time, 3)
    return report


def _commit(library: Library, key: str, read: dict, failed: dict, report: OcrReport) -> None:
    if not read and not failed:
        return
    # One transaction per batch, through the app's writer lane (inline in the CLI).
    library.write(lambda s: write_results(s, key, read, failed))
    report.read += len(read)
    report.with_text += sum(1 for r in read.values() if r.lines)
    report.lines += sum(len(r.lines) for r in read.values())
    report.failed += len(failed)


def _stored_hash(library: Library, photo_id: int) -> str:
    with library.session() as s:
        return s.scalar(select(Photo.content_hash).where(Photo.id == photo_id)) or ""


def ocr_status(library: Library, engine_key: str) -> dict:
    """Counts for ``clipdesk ocr status``: photos, done with this engine (text / none / failed), to do."""
    from sqlalchemy import func

    photos, todo = photos_to_read(library, engine_key)
    with library.session() as s:
        counts = dict(s.execute(select(OcrRow.status, func.count()).where(OcrRow.engine_key == engine_key)
                                .group_by(OcrRow.status)).all())
    return {"photos": photos, "todo": len(todo), "with_text": counts.get("text", 0),
            "without_text": counts.get("none", 0), "failed": counts.get("failed", 0), "engine": engine_key}
