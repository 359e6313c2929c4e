"""Hash the library's photos for the duplicate finder: incremental, resumable, Ctrl-C safe.

A photo is hashed when it has no hash row or its row came from other content
(the file changed). Each file is read once, for reading only; a file that
cannot be decoded gets a row with its reason, and is skipped (not retried)
until its content changes. Each batch commits on its own, so a stopped run
keeps what it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from clipdesk.duplicates.hashes import hash_file, pack_variants, to_signed
from clipdesk.imageio import ImageReadError
from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress
from clipdesk.store.db import Library
from clipdesk.store.models import Photo, PhotoHash, utcnow

PHASE = "hashing"


@dataclass
class HashReport:
    photos: int = 0  # present photos
    todo: int = 0
    hashed: int = 0
    failed: int = 0
    cancelled: bool = False
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), this run's


def photos_to_hash(library: Library) -> list[tuple[int, str, str]]:
    """(id, path, content hash) of present photos lacking a hash row for their current content."""
    stmt = (select(Photo.id, Photo.path, Photo.content_hash, PhotoHash.content_hash)
            .outerjoin(PhotoHash, PhotoHash.photo_id == Photo.id)
            .where(Photo.missing_since.is_(None)).order_by(Photo.id))
    with library.session() as s:
        rows = s.execute(stmt).all()
    return [(pid, path, content) for pid, path, content, hashed in rows if hashed != content]


def compute_hashes(library: Library, batch: int = 64, progress: ProgressCallback = no_progress,
                   cancel: CancelToken | None = None) -> HashReport:
    """Hash every present photo that needs it; see the module docstring."""
    cancel = cancel or CancelToken()
    report = HashReport()
    with library.session() as s:
        report.photos = s.query(Photo).filter(Photo.missing_since.is_(None)).count()
    todo = photos_to_hash(library)
    report.todo = len(todo)
    progress(Progress(PHASE, 0, report.todo))
    for start in range(0, len(todo), batch):
        if cancel.checkpoint():
            report.cancelled = True
            break
        rows = []
        for pid, path, content in todo[start:start + batch]:
            try:
                h = hash_file(path)
                rows.append(PhotoHash(photo_id=pid, content_hash=content, pixel_hash=h.pixel_hash,
                                      phash=to_signed(h.phash), dhash=to_signed(h.dhash),
                                      phash_variants=pack_variants(h.variants), computed_at=utcnow()))
            except (ImageReadError, OSError) as exc:
                reason = str(exc) if isinstance(exc, ImageReadError) else f"cannot read: {exc.strerror or exc}"
                rows.append(PhotoHash(photo_id=pid, content_hash=content, error=reason, computed_at=utcnow()))
                report.errors.append((path, reason))
                report.failed += 1
        library.write(lambda s, rows=rows: [s.merge(r) for r in rows])
        report.hashed += sum(r.error is None for r in rows)
        progress(Progress(PHASE, min(start + batch, len(todo)), report.todo, report.failed))
    return report
