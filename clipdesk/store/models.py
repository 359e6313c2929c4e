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
    return not name.startswith(FTS_TABLE)


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


# -- duplicates (migration 0004) ---------------------------------------------------
