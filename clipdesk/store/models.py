"""ORM models. The schema itself is created by the migrations, never by
``create_all``; a test checks the two agree."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class FsPath(TypeDecorator):
    """A filesystem path that survives names that are not valid UTF-8.

    Linux file names are bytes; Python hands undecodable ones over with
    surrogate escapes, which SQLite's UTF-8 text cannot hold. Such paths are
    stored as their raw bytes (SQLite columns accept mixed types) and come
    back as the same ``str``, so ``open()`` still finds the file.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = os.fspath(value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(value)
        return value

    def process_result_value(self, value, dialect):
        if isinstance(value, bytes):
            return os.fsdecode(value)
        return value


class Base(DeclarativeBase):
    pass


class Folder(Base):
    __tablename__ = "folders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_scan_at: Mapped[datetime | None] = mapped_column(DateTime)
    scan_complete: Mapped[bool] = mapped_column(Boolean, default=False)


class Photo(Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int | None] = mapped_column(ForeignKey("folders.id", ondelete="SET NULL"), index=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer, default=1)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    camera_make: Mapped[str | None] = mapped_column(String(128))
    camera_model: Mapped[str | None] = mapped_column(String(128))
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Mark-and-sweep: set when a scan of its folder no longer finds the file.
    # The row (and its labels, captions) stays so that a move can reclaim it.
    missing_since: Mapped[datetime | None] = mapped_column(DateTime, index=True)

    embeddings: Mapped[list[Embedding]] = relationship(back_populates="photo", cascade="all, delete-orphan", passive_deletes=True)


class Embedding(Base):
    __tablename__ = "embeddings"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    model_key: Mapped[str] = mapped_column(String(256), primary_key=True, index=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float16, L2-normalised
    # The content hash the vector was computed from: a changed file re-embeds.
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    photo: Mapped[Photo] = relationship(back_populates="embeddings")


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("photo_id", "label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(256), index=True)
    score: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))  # auto | user
    status: Mapped[str] = mapped_column(String(16), default="proposed")  # proposed | accepted | rejected
    model_key: Mapped[str | None] = mapped_column(String(256))
    evidence: Mapped[str | None] = mapped_column(Text)  # JSON: [[descriptor, score], ...]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Caption(Base):
    __tablename__ = "captions"
    __table_args__ = (UniqueConstraint("photo_id", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))  # auto | user
    model_key: Mapped[str | None] = mapped_column(String(256))
    score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# Tables the migrations create that the ORM does not map: the caption keyword
# index (FTS5) and its shadow tables. Schema comparisons leave them out.
FTS_TABLE = "captions_fts"


def is_mapped_table(name: str) -> bool:
    return not name.startswith((FTS_TABLE, OCR_FTS_TABLE))


class ScanError(Base):
    __tablename__ = "scan_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    reason: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Meta(Base):
    """Small key/value facts: the library's current model, vector generations."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# -- OCR (migration 0003) ----------------------------------------------------------

# The trigram index over each photo's folded OCR text (``ocr.fold.index_text``),
# kept in sync with ``ocr_results.folded`` by triggers; rowid = photo id.
OCR_FTS_TABLE = "ocr_fts"


class OcrResult(Base):
    """What the OCR pass read in one photo, with the engine and content it read.

    ``status``: ``text`` (``lines`` holds them), ``none`` (looked, found no text:
    not re-run) or ``failed`` (``reason`` says why; retried when the file changes).
    ``lines``: JSON ``[{"text", "box": [[x, y] * 4], "confidence"}]`` in reading
    order, boxes in the upright photo's pixels.
    """

    __tablename__ = "ocr_results"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    engine_key: Mapped[str] = mapped_column(String(256), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # text | none | failed
    reason: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")  # the lines as read, one per line
    lines: Mapped[str] = mapped_column(Text, default="[]")
    folded: Mapped[str] = mapped_column(Text, default="")  # what ocr_fts indexes
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# -- duplicates (migration 0004) ---------------------------------------------------


class PhotoHash(Base):
    """A photo's hashes for the duplicate finder, from the content it was computed on.

    ``phash_variants`` holds the pHash of the photo's eight rotations and mirror
    images (little-endian uint64 each, identity first), so a rotated or mirrored
    copy is found by comparing hashes only. ``error`` marks a file that could not
    be decoded: it is skipped until its content changes.
    """

    __tablename__ = "photo_hashes"

    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    pixel_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phash: Mapped[int | None] = mapped_column(BigInteger)  # signed view of the 64 bits (SQLite integers)
    dhash: Mapped[int | None] = mapped_column(BigInteger)
    phash_variants: Mapped[bytes | None] = mapped_column(LargeBinary)
    error: Mapped[str | None] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TrashLog(Base):
    """One photo moved to the system trash by the duplicate finder: what undo reads.

    Written in three steps so a crash never leaves the library inconsistent:
    ``intent`` before the move, ``trashed`` (with the photo marked gone) after
    it, ``restored`` after an undo; a later run reconciles rows left at ``intent``.
    """

    __tablename__ = "trash_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(32), index=True)
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id", ondelete="SET NULL"), index=True)
    keeper_id: Mapped[int | None] = mapped_column(Integer)
    original_path: Mapped[str] = mapped_column(FsPath)
    trash_path: Mapped[str | None] = mapped_column(FsPath)  # where the trash put it, when known
    info_path: Mapped[str | None] = mapped_column(FsPath)  # its freedesktop .trashinfo file
    state: Mapped[str] = mapped_column(String(16), default="intent")  # intent | trashed | restored | failed
    reason: Mapped[str | None] = mapped_column(Text)
    trashed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    restored_at: Mapped[datetime | None] = mapped_column(DateTime)
