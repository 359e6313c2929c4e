"""Indexing: walk, diff against the store, decode, embed, write in batches.

Every batch of photos is committed together with its embeddings in one
transaction, so a process killed at any moment leaves a consistent database
and the next run simply continues with what is not yet done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select, update

from clipdesk import decode_pool
from clipdesk.config import CoreConfig
from clipdesk.crashpoints import crash_point
from clipdesk.engine.base import Encoder
from clipdesk.imageio import PhotoInfo
from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress
from clipdesk.scanner import FileEntry, WalkError, walk
from clipdesk.store.db import Library
from clipdesk.store.models import Embedding, Folder, Photo, ScanError, utcnow

INLINE_BELOW = 48  # fewer files than this: decoding inline beats starting processes
_PHOTO_FIELDS = ("size", "mtime_ns", "content_hash", "format", "width", "height", "frames", "taken_at",
                 "camera_make", "camera_model", "gps_lat", "gps_lon")


@dataclass
class IndexReport:
    found: int = 0
    new: int = 0
    changed: int = 0
    moved: int = 0
    unchanged: int = 0
    embedded: int = 0
    missing: int = 0
    errors: int = 0
    cancelled: bool = False
    error_samples: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Known:
    id: int
    size: int
    mtime_ns: int
    missing: bool


def index(
    library: Library,
    roots: list[str | os.PathLike[str]],
    engine: Encoder,
    config: CoreConfig | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> IndexReport:
    """Bring the library up to date with ``roots`` for ``engine``'s model."""
    config = config or CoreConfig()
    cancel = cancel or CancelToken()
    report = IndexReport()
    started = utcnow()
    root_paths = [Path(os.path.abspath(os.path.expanduser(os.fspath(r)))) for r in roots]
    folder_ids = _register_folders(library, root_paths)
    known, embedded = _load_state(library, engine.key)

    progress(Progress("scanning", 0, 0))
    todo: list[tuple[str, int | None]] = []
    walked: set[str] = set()
    seen: set[int] = set()
    walk_errors: list[WalkError] = []
    for item in walk(root_paths, skip_dirs=(library.root,), cancel=cancel):
        if isinstance(item, WalkError):
            walk_errors.append(item)
            continue
        walked.add(item.path)
        row = known.get(item.path)
        if row is not None and _unchanged(row, item):
            seen.add(row.id)
            report.unchanged += 1
            if row.id not in embedded:
                todo.append((item.path, row.id))
        else:
            todo.append((item.path, row.id if row else None))
        if len(walked) % 2000 == 0:
            progress(Progress("scanning", len(walked), 0))
    report.found = len(walked)
    _record_errors(library, [(e.path, e.reason) for e in walk_errors], report)
    if cancel.cancelled:
        report.cancelled = True
        return report

    spec = engine.input_spec()
    workers = config.workers() if len(todo) >= INLINE_BELOW else 0
    results = decode_pool.decode((p for p, _ in todo), spec.size, spec.squash, workers, ahead=engine.batch_size)
    total = len(todo)
    done = 0
    batch: list[tuple[str, PhotoInfo | None, str | None]] = []
    progress(Progress("indexing", 0, total, report.errors))
    for result in results:
        batch.append(result)
        if len(batch) >= engine.batch_size:
            _write_batch(library, engine, batch, folder_ids, walked, seen, embedded, report)
            done += len(batch)
            batch = []
            progress(Progress("indexing", done, total, report.errors))
            if cancel.checkpoint():  # also where a paused job waits
                results.close()
                report.cancelled = True
                return report
    if batch:
        _write_batch(library, engine, batch, folder_ids, walked, seen, embedded, report)
        done += len(batch)
        progress(Progress("indexing", done, total, report.errors))
    # A root that could not be opened (an unmounted drive) is not swept: its
    # photos are unavailable, not deleted.
    reachable = [r for r in root_paths if str(r) not in {e.path for e in walk_errors}]
    report.missing = _sweep(library, reachable, known, seen, started)
    return report


def _unchanged(row: _Known, entry: FileEntry) -> bool:
    return not row.missing and row.size == entry.size and row.mtime_ns == entry.mtime_ns


def _register_folders(library: Library, roots: list[Path]) -> dict[Path, int]:
    folders = [root for root in roots if root.is_dir()]  # a stat: done here, not in the transaction

    def register(s) -> dict[Path, int]:
        ids: dict[Path, int] = {}
        for root in folders:
            folder = s.scalar(select(Folder).where(Folder.path == str(root)))
            if folder is None:
                folder = Folder(path=str(root), scan_complete=False)
                s.add(folder)
                s.flush()
                _adopt_photos(s, folder)
            # Until this run's sweep says otherwise: a killed or stopped run
            # leaves the folder marked unfinished, and the app resumes it.
            folder.scan_complete = False
            ids[root] = folder.id
        return ids

    return library.write(register)


def _adopt_photos(s, folder: Folder) -> None:
    """A new folder inside an indexed one takes over the photos under it."""
    all_folders = dict(s.execute(select(Folder.path, Folder.id)).all())
    prefix = os.path.join(folder.path, "")
    for pid, path, current in s.execute(select(Photo.id, Photo.path, Photo.folder_id)):
        if path.startswith(prefix) and current != folder.id:
            owner = max((f for f in all_folders if path.startswith(os.path.join(f, ""))), key=len)
            if owner == folder.path:
                s.execute(update(Photo).where(Photo.id == pid).values(folder_id=folder.id))


def _load_state(library: Library, model_key: str) -> tuple[dict[str, _Known], set[int]]:
    with library.session() as s:
        known = {
            path: _Known(pid, size, mtime, missing is not None)
            for pid, path, size, mtime, missing in s.execute(
                select(Photo.id, Photo.path, Photo.size, Photo.mtime_ns, Photo.missing_since)
            )
        }
        embedded = set(
            s.scalars(
                select(Embedding.photo_id)
                .join(Photo, Photo.id == Embedding.photo_id)
                .where(Embedding.model_key == model_key, Embedding.content_hash == Photo.content_hash)
            )
        )
    return known, embedded


def _folder_for(path: str, folder_ids: dict[Path, int]) -> int | None:
    best: tuple[int, int] | None = None
    for root, fid in folder_ids.items():
        prefix = os.path.join(str(root), "")
        if path.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), fid)
    return best[1] if best else None


class _Stragglers(Exception):
    """Photos the read step did not foresee needing a vector: encode them, then write the batch again."""

    def __init__(self, items: list[tuple[str, PhotoInfo]]) -> None:
        super().__init__(f"{len(items)} photos need vectors")
        self.items = items


def _write_batch(library, engine, batch, folder_ids, walked, seen, embedded, report) -> None:
    """Store one batch: photo rows and their embeddings commit in one transaction.

    The model runs between a read step (which photos need a vector) and the
    write transaction, so SQLite's write lock is held for milliseconds, not
    for the whole inference, and the write can run on another thread (the
    app's writer lane, through ``library.write``) while the model stays on its own.
    """
    good = [(path, info) for path, info, err in batch if info is not None]
    failed = [(path, err) for path, info, err in batch if info is None]
    need = _needing_vectors(library, engine.key, good, walked)
    vectors = _encode(engine, [(path, info) for path, info in good if path in need])
    while True:
        try:
            counts, photo_ids, stored_ids = library.write(
                lambda s: _store_batch(s, engine.key, good, failed, vectors, folder_ids, walked))
            break
        except _Stragglers as more:
            # Another writer changed the library between the read step and this write: the model
            # encodes what it now needs (here, on the model's thread), and the batch is written again.
            vectors.update(_encode(engine, more.items))
    for name, n in counts.items():
        setattr(report, name, getattr(report, name) + n)
    _count_errors(report, failed)
    seen.update(photo_ids)
    embedded.update(stored_ids)
    crash_point("index.batch-committed")


def _store_batch(s, model_key, good, failed, vectors, folder_ids, walked) -> tuple[dict[str, int], list[int], list[int]]:
    """The write transaction of one batch; returns (report counts, photo ids, ids given a new vector)."""
    counts = {"new": 0, "moved": 0, "changed": 0, "embedded": 0}
    existing = _existing_rows(s, good, walked)
    photos: list[tuple[Photo, PhotoInfo]] = []
    for path, info in good:
        photo, moved = existing.get(path, (None, False))
        if photo is None:
            photo = Photo(path=path, added_at=utcnow())
            s.add(photo)
            counts["new"] += 1
        elif moved:
            photo.path = path
            counts["moved"] += 1
        elif photo.content_hash != info.content_hash:
            counts["changed"] += 1
        photo.folder_id = _folder_for(path, folder_ids)
        photo.missing_since = None
        for name in _PHOTO_FIELDS:
            setattr(photo, name, getattr(info, name))
        photos.append((photo, info))
    s.flush()
    have = _embeddings_of(s, model_key, [photo.id for photo, _ in photos])
    to_store = []
    for photo, info in photos:
        old = have.get(photo.id)
        if old is None or old.content_hash != info.content_hash:
            to_store.append((photo, info, old))
    missing = [(photo.path, info) for photo, info, _ in to_store if photo.path not in vectors]
    if missing:
        raise _Stragglers(missing)  # rolls this transaction back; nothing of the batch is kept
    now = utcnow()
    for photo, info, old in to_store:
        vec = vectors[photo.path]
        blob = vec.astype("<f2").tobytes()
        if old is None:
            s.add(Embedding(photo_id=photo.id, model_key=model_key, dim=len(vec), vector=blob,
                            content_hash=info.content_hash, created_at=now))
        else:
            old.dim, old.vector, old.content_hash, old.created_at = len(vec), blob, info.content_hash, now
    counts["embedded"] = len(to_store)
    if good:
        s.execute(delete(ScanError).where(ScanError.path.in_([p for p, _ in good])))
    _upsert_errors(s, failed)
    s.flush()  # the batch's rows reach SQLite uncommitted: what a crash here must undo
    crash_point("index.batch-written")
    return counts, [photo.id for photo, _ in photos], [photo.id for photo, _, _ in to_store]


def _encode(engine, items: list[tuple[str, PhotoInfo]]) -> dict[str, np.ndarray]:
    if not items:
        return {}
    vectors = engine.encode_pixels(np.stack([info.pixels for _, info in items]))
    return {path: vec for (path, _), vec in zip(items, vectors, strict=True)}


def _photos_by_path(s, paths: list[str]) -> dict[str, Photo]:
    out: dict[str, Photo] = {}
    for start in range(0, len(paths), 500):
        out.update((p.path, p) for p in s.scalars(select(Photo).where(Photo.path.in_(paths[start : start + 500]))))
    return out


def _embeddings_of(s, model_key: str, photo_ids: list[int]) -> dict[int, Embedding]:
    out: dict[int, Embedding] = {}
    for start in range(0, len(photo_ids), 500):
        ids = photo_ids[start : start + 500]
        out.update((e.photo_id, e) for e in s.scalars(
            select(Embedding).where(Embedding.model_key == model_key, Embedding.photo_id.in_(ids))))
    return out


def _needing_vectors(library: Library, model_key: str, good: list[tuple[str, PhotoInfo]], walked: set[str]) -> set[str]:
    """Paths in ``good`` whose photo will lack a current vector: the write step's
    decisions, made read-only (no write lock) so the model can run before it."""
    if not good:
        return set()
    with library.session() as s:
        photo_of = {path: photo.id for path, (photo, _) in _existing_rows(s, good, walked).items()}
        have = _embeddings_of(s, model_key, list(photo_of.values()))
    need: set[str] = set()
    for path, info in good:
        pid = photo_of.get(path)
        if pid is None or pid not in have or have[pid].content_hash != info.content_hash:
            need.add(path)  # a new photo, or one without a vector of its current bytes
    return need


def _existing_rows(s, good: list[tuple[str, PhotoInfo]], walked: set[str]) -> dict[str, tuple[Photo, bool]]:
    """The row each decoded file continues, as ``path -> (photo, moved)``; a path
    left out is a new photo.

    A file's own row (by path) comes first; failing that, a row with the same
    bytes whose old file is gone: the file moved (``moved=True``), and keeps
    its id, labels, captions and vectors. The read step (``_needing_vectors``)
    and the write step both decide through here, so they cannot disagree.
    """
    by_path = _photos_by_path(s, [path for path, _ in good])
    candidates = _same_content(s, [info.content_hash for path, info in good if path not in by_path])
    claimed: set[int] = set()
    out: dict[str, tuple[Photo, bool]] = {}
    for path, info in good:
        if path in by_path:
            out[path] = (by_path[path], False)
        elif (photo := _reclaim_moved(candidates.get(info.content_hash, ()), walked, claimed)) is not None:
            out[path] = (photo, True)
    return out


def _same_content(s, hashes: list[str]) -> dict[str, list[Photo]]:
    """Photo rows holding each of ``hashes``, oldest first: where moved files come from."""
    out: dict[str, list[Photo]] = {}
    unique = sorted(set(hashes))
    for start in range(0, len(unique), 500):
        rows = s.scalars(select(Photo).where(Photo.content_hash.in_(unique[start : start + 500])).order_by(Photo.id))
        for photo in rows:
            out.setdefault(photo.content_hash, []).append(photo)
    return out


def _reclaim_moved(candidates, walked: set[str], claimed: set[int]) -> Photo | None:
    """A photo row with the same bytes whose old file is gone: it moved.

    ``claimed`` holds the rows already given to another file of this batch
    (two copies of one photo moved together); the chosen row is added to it.
    """
    for candidate in candidates:
        if candidate.id not in claimed and candidate.path not in walked and not os.path.lexists(candidate.path):
            claimed.add(candidate.id)
            return candidate
    return None


def _upsert_errors(s, failed: list[tuple[str, str]]) -> None:
    for path, reason in failed:
        row = s.scalar(select(ScanError).where(ScanError.path == path))
        if row is None:
            s.add(ScanError(path=path, reason=reason, seen_at=utcnow()))
        else:
            row.reason, row.seen_at = reason, utcnow()


def _count_errors(report: IndexReport, failed: list[tuple[str, str]]) -> None:
    """After the rows are committed: a transaction written again must not count its errors twice."""
    report.errors += len(failed)
    report.error_samples.extend(failed[: max(0, 20 - len(report.error_samples))])


def _record_errors(library: Library, failed: list[tuple[str, str]], report: IndexReport) -> None:
    if failed:
        library.write(lambda s: _upsert_errors(s, failed))
        _count_errors(report, failed)


def _under(path: str, roots: list[Path]) -> bool:
    return any(path == str(r) or path.startswith(os.path.join(str(r), "")) for r in roots)


def _sweep(library: Library, roots: list[Path], known: dict[str, _Known], seen: set[int], started) -> int:
    """Mark photos under ``roots`` that this scan did not find; drop errors it did not see again."""
    gone = [k.id for path, k in known.items() if k.id not in seen and not k.missing and _under(path, roots)]
    now = utcnow()

    def sweep(s) -> None:
        for start in range(0, len(gone), 500):
            s.execute(update(Photo).where(Photo.id.in_(gone[start : start + 500])).values(missing_since=now))
        # Every failing file is retried on each scan and its error re-stamped,
        # so an error older than this scan is for a file now fine or gone.
        stale = [
            eid for eid, path in s.execute(select(ScanError.id, ScanError.path).where(ScanError.seen_at < started))
            if _under(path, roots)
        ]
        if stale:
            s.execute(delete(ScanError).where(ScanError.id.in_(stale)))
        for root in roots:
            folder = s.scalar(select(Folder).where(Folder.path == str(root)))
            if folder is not None:
                folder.last_scan_at, folder.scan_complete = now, True

    library.write(sweep)
    return len(gone)
