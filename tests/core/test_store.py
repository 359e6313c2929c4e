"""Store: migrations match the models, pragmas, generation counter, odd paths."""

from __future__ import annotations

import os
import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, select

from clipdesk.errors import LibraryError
from clipdesk.paths import LIBRARY_MARKER, library_dir
from clipdesk.store.db import Library
from clipdesk.store.models import Base, Embedding, Label, Photo, is_mapped_table, utcnow


def _photo(path, h="h1"):
    return Photo(path=path, size=1, mtime_ns=1, content_hash=h, format="JPEG", width=1, height=1, frames=1,
                 added_at=utcnow())


def test_migrated_schema_matches_the_models(library):
    with library.engine.connect() as conn:
        opts = {"include_name": lambda name, kind, _: kind != "table" or is_mapped_table(name)}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
    assert diff == []


def test_wal_and_foreign_keys_on(library):
    with library.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_library_folder_is_marked_and_reopens(tmp_path):
    lib = Library(tmp_path / "lib")
    with lib.session() as s, s.begin():
        s.add(_photo("/x/a.jpg"))
    lib.close()
    assert (tmp_path / "lib" / LIBRARY_MARKER).is_file()
    again = Library(tmp_path / "lib")
    with again.session() as s:
        assert s.scalar(select(Photo.path)) == "/x/a.jpg"
    version = sqlite3.connect(tmp_path / "lib" / "clipdesk.db").execute("select * from alembic_version").fetchall()
    assert version == [("0005",)]


def test_generation_counts_every_embedding_change(library):
    g0 = library.vectors_generation()
    with library.session() as s, s.begin():
        p = _photo("/x/a.jpg")
        s.add(p)
        s.flush()
        s.add(Embedding(photo_id=p.id, model_key="m", dim=2, vector=b"\0" * 4, content_hash="h1", created_at=utcnow()))
    g1 = library.vectors_generation()
    assert g1 > g0
    with library.session() as s, s.begin():
        s.execute(delete(Photo))  # the embedding goes by cascade, and still counts
    with library.session() as s:
        assert s.scalar(select(Embedding.photo_id)) is None
    assert library.vectors_generation() > g1


def test_a_photo_going_missing_or_coming_back_counts(library):
    from sqlalchemy import update

    with library.session() as s, s.begin():
        s.add(_photo("/x/a.jpg"))
    g0 = library.vectors_generation()
    with library.session() as s, s.begin():
        s.execute(update(Photo).values(size=5))  # control: other columns change nothing a search serves
    assert library.vectors_generation() == g0
    with library.session() as s, s.begin():
        s.execute(update(Photo).values(missing_since=utcnow()))  # gone (a scan, or moved to the trash)
    g1 = library.vectors_generation()
    with library.session() as s, s.begin():
        s.execute(update(Photo).values(missing_since=None))  # back (undo)
    assert g0 < g1 < library.vectors_generation()


def test_deleting_a_photo_cascades_to_labels(library):
    with library.session() as s, s.begin():
        p = _photo("/x/a.jpg")
        s.add(p)
        s.flush()
        s.add(Label(photo_id=p.id, label="dog", source="user", status="accepted", created_at=utcnow()))
    with library.session() as s, s.begin():
        s.execute(delete(Photo))
    with library.session() as s:
        assert s.scalar(select(Label.id)) is None


def test_non_utf8_paths_round_trip(library):
    weird = os.fsdecode(b"/photos/caf\xe9/\xff\xfe.jpg")
    with library.session() as s, s.begin():
        s.add(_photo(weird))
        s.add(_photo("/photos/ok/naïve.jpg", "h2"))
    with library.session() as s:
        paths = set(s.scalars(select(Photo.path)))
        assert paths == {weird, "/photos/ok/naïve.jpg"}
        assert s.scalar(select(Photo.id).where(Photo.path == weird)) is not None


def test_damaged_database_gives_a_clear_error(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    (root / "clipdesk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LibraryError) as exc:
        Library(root)
    assert "clipdesk.db" in str(exc.value) and "photos themselves are untouched" in str(exc.value)


def test_library_dir_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPDESK_HOME", str(tmp_path / "home"))
    assert library_dir() == tmp_path / "home"
    assert library_dir(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("CLIPDESK_HOME")
    assert library_dir().name == "library"
