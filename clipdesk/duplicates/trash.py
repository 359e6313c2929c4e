"""Moving duplicates to the system trash (send2trash) and undoing it, with the library kept consistent.

Each move is three steps: log the intent, move the file, then in one
transaction mark the photo gone (``missing_since``) and the log row
``trashed`` with where the trash put it. A crash between the steps leaves an
``intent`` row that :func:`reconcile` settles on the next run: the file still
in place means it was never moved; otherwise it was, and the photo is marked.

Undo (Linux and other freedesktop systems) finds the file through its
``.trashinfo`` (``Path=``) in the trash folders send2trash uses:
``$XDG_DATA_HOME/Trash`` and, on other drives, ``$topdir/.Trash/$uid`` or
``$topdir/.Trash-$uid``; it moves the file back, removes the info file and
unmarks the photo. On macOS and Windows the system's Trash / Recycle Bin
restores ("Put Back" / "Restore"), and the next scan finds the photo again:
there is no public way to restore from them here, so undo says so instead of
pretending. Photos are moved, never opened for writing, never deleted.
"""

from __future__ import annotations

import glob
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import select, update

from clipdesk.errors import ClipdeskError
from clipdesk.store.db import Library
from clipdesk.store.models import Photo, TrashLog, utcnow

FREEDESKTOP = sys.platform not in ("darwin", "win32")
OTHER_PLATFORM_UNDO = ("Restore the photos from the {bin} (select them, then {verb}); the next scan of their "
                       "folder brings them back into the library.")


@dataclass
class TrashReport:
    batch_id: str
    moved: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


@dataclass
class UndoReport:
    batch_id: str | None
    restored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    message: str | None = None  # the platform's own way, where clipdesk cannot restore


def move_to_trash(library: Library, plan: list[tuple[int, int]]) -> TrashReport:
    """Move photos to the trash: ``plan`` is (photo id, keeper id) pairs. The caller has the user's confirmation.

    A keeper is never moved, even if a plan names it.
    """
    from send2trash import send2trash

    keepers = {k for _, k in plan}
    plan = [(pid, k) for pid, k in plan if pid not in keepers]
    report = TrashReport(uuid.uuid4().hex[:12])
    with library.session() as s:
        paths = dict(s.execute(select(Photo.id, Photo.path).where(Photo.id.in_([p for p, _ in plan] + list(keepers)),
                                                                    Photo.missing_since.is_(None))).all())
    for pid, keeper in plan:
        path = paths.get(pid)
        if path is None:
            continue  # already gone
        if keeper not in paths or not os.path.isfile(paths[keeper]):
            # The copy to keep has gone since the scan: trashing this one could leave none outside the trash.
            report.failed.append((path, "kept: the photo to keep instead is no longer there"))
            continue
        log_id = library.write(lambda s, pid=pid, keeper=keeper, path=path: _log_intent(s, report.batch_id, pid,
                                                                                        keeper, path))
        try:
            send2trash(path)
        except OSError as exc:  # TrashPermissionError is one
            library.write(lambda s, log_id=log_id, exc=exc: _settle(s, log_id, "failed", reason=str(exc)))
            report.failed.append((path, str(exc)))
            continue
        where = find_in_trash(path) if FREEDESKTOP else None
        library.write(lambda s, log_id=log_id, where=where: _settle(s, log_id, "trashed", where))
        report.moved.append(path)
    return report


def _log_intent(s, batch: str, pid: int, keeper: int, path: str) -> int:
    row = TrashLog(batch_id=batch, photo_id=pid, keeper_id=keeper, original_path=path, state="intent",
                   trashed_at=utcnow())
    s.add(row)
    s.flush()
    return row.id


def _settle(s, log_id: int, state: str, where: tuple[str, str] | None = None, reason: str | None = None) -> None:
    row = s.get(TrashLog, log_id)
    row.state, row.reason = state, reason
    if where is not None:
        row.trash_path, row.info_path = where
    if state == "trashed" and row.photo_id is not None:
        s.execute(update(Photo).where(Photo.id == row.photo_id).values(missing_since=utcnow()))


def reconcile(library: Library) -> int:
    """Settle moves a crash interrupted (rows left at ``intent``); returns how many."""
    with library.session() as s:
        rows = s.execute(select(TrashLog.id, TrashLog.original_path).where(TrashLog.state == "intent")).all()
    for log_id, path in rows:
        if os.path.lexists(path):
            library.write(lambda s, log_id=log_id: _settle(s, log_id, "failed", reason="not moved (interrupted)"))
        else:
            where = find_in_trash(path) if FREEDESKTOP else None
            library.write(lambda s, log_id=log_id, where=where: _settle(s, log_id, "trashed", where))
    return len(rows)


def batches(library: Library) -> list[tuple[str, int, object]]:
    """(batch id, photos still in the trash, when), newest first."""
    with library.session() as s:
        rows = s.execute(select(TrashLog.batch_id, TrashLog.trashed_at).where(TrashLog.state == "trashed")).all()
    out: dict[str, list] = {}
    for batch, when in rows:
        entry = out.setdefault(batch, [batch, 0, when])
        entry[1] += 1
        entry[2] = max(entry[2], when)
    return sorted((tuple(v) for v in out.values()), key=lambda b: b[2], reverse=True)


def undo(library: Library, batch_id: str | None = None) -> UndoReport:
    """Bring back the photos of ``batch_id`` (default: the latest batch still in the trash)."""
    reconcile(library)
    if batch_id is None:
        found = batches(library)
        if not found:
            return UndoReport(None, message="Nothing to undo: no photos moved to the trash by clipdesk are there.")
        batch_id = found[0][0]
    with library.session() as s:
        rows = s.scalars(select(TrashLog).where(TrashLog.batch_id == batch_id, TrashLog.state == "trashed")).all()
    if not rows:
        raise ClipdeskError(f"No photos of batch {batch_id!r} are in the trash.")
    report = UndoReport(batch_id)
    if not FREEDESKTOP:
        mac = sys.platform == "darwin"
        report.message = OTHER_PLATFORM_UNDO.format(bin="Trash" if mac else "Recycle Bin",
                                                    verb="File ▸ Put Back" if mac else "Restore")
        return report
    for row in rows:
        try:
            _restore(row)
        except OSError as exc:
            report.failed.append((row.original_path, exc.strerror or str(exc)))
            continue
        library.write(lambda s, row=row: _unmark(s, row.id))
        report.restored.append(row.original_path)
    return report


def _restore(row: TrashLog) -> None:
    where = (row.trash_path, row.info_path) if row.trash_path and os.path.exists(row.trash_path) else None
    where = where or find_in_trash(row.original_path)
    if where is None:
        raise FileNotFoundError(2, "no longer in the trash (emptied, or restored by hand)")
    if os.path.lexists(row.original_path):
        raise FileExistsError(17, "another file now has its name; restore it from the trash by hand")
    os.makedirs(os.path.dirname(row.original_path), exist_ok=True)
    import shutil

    shutil.move(where[0], row.original_path)  # a rename on one drive; a copy + remove across drives
    try:
        os.unlink(where[1])
    except OSError:
        pass


def _unmark(s, log_id: int) -> None:
    row = s.get(TrashLog, log_id)
    row.state, row.restored_at = "restored", utcnow()
    if row.photo_id is not None:
        s.execute(update(Photo).where(Photo.id == row.photo_id).values(missing_since=None))


# -- the freedesktop trash, as send2trash writes it -------------------------------


def trash_dirs(original: str) -> list[Path]:
    """The trash folders a file at ``original`` may have gone to, most likely first."""
    try:
        from send2trash import plat_other

        home = [Path(os.fsdecode(plat_other.HOMETRASH_B))]  # what send2trash computed when imported
    except ImportError:
        home = []
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    dirs = [*home, Path(xdg) / "Trash"]
    top = Path(original).resolve().parent
    while not os.path.ismount(top) and top != top.parent:
        top = top.parent
    dirs += [top / ".Trash" / str(os.getuid()), top / f".Trash-{os.getuid()}"]
    return list(dict.fromkeys(dirs))


def find_in_trash(original: str) -> tuple[str, str] | None:
    """(trashed file, its .trashinfo) of the latest trashing of ``original``, or None."""
    best = None
    for trash in trash_dirs(original):
        info_dir = trash / "info"
        if not info_dir.is_dir():
            continue
        # Trashed names are the original's, or "stem N.ext" when taken: only those are read.
        stem = glob.escape(os.path.splitext(os.path.basename(original))[0])
        for info in info_dir.glob(f"{stem}*.trashinfo"):
            path, when = _read_info(info)
            if path is None:
                continue
            full = path if os.path.isabs(path) else os.path.join(_topdir(trash), path)
            if os.path.abspath(full) == os.path.abspath(original):
                files = trash / "files" / info.name[: -len(".trashinfo")]
                key = (when, info.stat().st_mtime_ns)  # the date has whole seconds only
                if files.exists() and (best is None or key > best[0]):
                    best = (key, str(files), str(info))
    return None if best is None else (best[1], best[2])


def _topdir(trash: Path) -> str:
    """The folder a trash's relative ``Path=`` entries start from (the spec's $topdir)."""
    if trash.name == "Trash":
        return str(trash.parent)  # the home trash: send2trash writes relative to $XDG_DATA_HOME
    return str(trash.parent.parent if trash.parent.name == ".Trash" else trash.parent)


def _read_info(info: Path) -> tuple[str | None, str]:
    path, when = None, ""
    try:
        for line in info.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            if line.startswith("Path="):
                path = os.fsdecode(unquote(line[5:], errors="surrogateescape").encode("utf-8", "surrogateescape"))
            elif line.startswith("DeletionDate="):
                when = line[13:]
    except OSError:
        return None, ""
    return path, when
