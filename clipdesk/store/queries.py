"""Read-side queries shared by the CLI and the GUI (short sessions, no Qt)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select

from clipdesk.crashpoints import crash_point
from clipdesk.store.db import Library
from clipdesk.store.models import Caption, Embedding, Folder, Label, Photo


@dataclass
class FolderSummary:
    id: int
    path: str
    photos: int
    embedded: int
    complete: bool
    last_scan_at: datetime | None


@dataclass
class PhotoDetails:
    id: int
    path: str
    size: int
    format: str
    width: int
    height: int
    frames: int
    taken_at: datetime | None
    camera_make: str | None
    camera_model: str | None
    gps_lat: float | None
    gps_lon: float | None
    missing: bool
    labels: list[tuple[str, float | None, str]] = field(default_factory=list)  # (label, score, status)
    caption: str | None = None
    evidence: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # label -> (descriptor, score)

    @property
    def camera(self) -> str | None:
        parts = [p for p in (self.camera_make, self.camera_model) if p]
        if len(parts) == 2 and parts[1].lower().startswith(parts[0].lower()):
            parts = parts[1:]  # "Canon" + "Canon EOS R5"
        return " ".join(parts) or None


@dataclass
class PhotoRow:
    id: int
    path: str


def find_photo(library: Library, ref: str) -> int | None:
    """A library photo's id from its id (digits) or its file path; None if not there."""
    with library.session() as s:
        if ref.isdigit():
            return s.scalar(select(Photo.id).where(Photo.id == int(ref)))
        return s.scalar(select(Photo.id).where(Photo.path == os.path.abspath(ref)))


def folder_summaries(library: Library, model_key: str | None) -> list[FolderSummary]:
    """Library folders with present-photo and embedded counts."""
    with library.session() as s:
        counts = dict(s.execute(
            select(Photo.folder_id, func.count()).where(Photo.missing_since.is_(None)).group_by(Photo.folder_id)
        ).all())
        embedded = {}
        if model_key:
            embedded = dict(s.execute(
                select(Photo.folder_id, func.count()).join(Embedding, Embedding.photo_id == Photo.id)
                .where(Photo.missing_since.is_(None), Embedding.model_key == model_key).group_by(Photo.folder_id)
            ).all())
        return [
            FolderSummary(f.id, f.path, counts.get(f.id, 0), embedded.get(f.id, 0), f.scan_complete, f.last_scan_at)
            for f in s.scalars(select(Folder).order_by(Folder.path))
        ]


def photo_details(library: Library, photo_id: int) -> PhotoDetails | None:
    with library.session() as s:
        p = s.get(Photo, photo_id)
        if p is None:
            return None
        rows = s.execute(
            select(Label.label, Label.score, Label.status, Label.evidence)
            .where(Label.photo_id == photo_id, Label.status != "rejected").order_by(Label.score.desc())
        ).all()
        labels = [(label, score, status) for label, score, status, _ in rows]
        evidence = {label: [(str(d), float(v)) for d, v in json.loads(raw)] for label, _, _, raw in rows if raw}
        caption = s.scalar(
            select(Caption.text).where(Caption.photo_id == photo_id)
            .order_by((Caption.source == "user").desc(), Caption.created_at.desc()).limit(1)
        )
        return PhotoDetails(
            p.id, p.path, p.size, p.format, p.width, p.height, p.frames, p.taken_at, p.camera_make, p.camera_model,
            p.gps_lat, p.gps_lon, p.missing_since is not None, labels, caption, evidence,
        )


def all_photos(library: Library, folder: str | None = None, label: str | None = None) -> list[PhotoRow]:
    """Present photos, newest first (date taken, then path): the browse view.

    ``label``: only photos carrying that label (not rejected).
    """
    stmt = (select(Photo.id, Photo.path).where(Photo.missing_since.is_(None))
            .order_by(Photo.taken_at.desc().nulls_last(), Photo.path))
    if label:
        stmt = stmt.where(Photo.id.in_(select(Label.photo_id).where(Label.label == label, Label.status != "rejected")))
    prefix = os.path.join(os.path.abspath(folder), "") if folder else None
    with library.session() as s:
        return [PhotoRow(i, p) for i, p in s.execute(stmt) if prefix is None or p.startswith(prefix)]


def label_counts(library: Library) -> list[tuple[str, int]]:
    with library.session() as s:
        return [tuple(r) for r in s.execute(
            select(Label.label, func.count()).where(Label.status != "rejected")
            .group_by(Label.label).order_by(func.count().desc(), Label.label)
        )]


def remove_folder(library: Library, path: str) -> int:
    """Forget a folder and the photos under it. Only database rows go; files are never touched.

    Returns the number of photo rows removed (their embeddings, labels and
    captions go with them by cascade).
    """
    root = os.path.abspath(path)
    prefix = os.path.join(root, "")

    def write(s) -> int:
        folder = s.scalar(select(Folder).where(Folder.path == root))
        others = [f for f in s.scalars(select(Folder.path)) if f != root]
        ids = [
            pid for pid, p in s.execute(select(Photo.id, Photo.path))
            if p.startswith(prefix) and not any(p.startswith(os.path.join(o, "")) and len(o) > len(root) for o in others)
        ]
        for start in range(0, len(ids), 500):
            s.execute(delete(Photo).where(Photo.id.in_(ids[start : start + 500])))
        if folder is not None:
            s.delete(folder)
        s.flush()  # the deletes reach SQLite uncommitted: what a crash here must undo
        crash_point("folder-removal.written")
        return len(ids)

    removed = library.write(write)
    crash_point("folder-removal.committed")
    return removed

