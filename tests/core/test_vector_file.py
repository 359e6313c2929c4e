"""The vector file: read instead of SQLite while it holds the library's generation, never when stale or damaged."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from _vecdb import add_photos
from sqlalchemy import update

from clipdesk.store import vectors as vectors_mod
from clipdesk.store.models import Photo
from clipdesk.store.vector_file import VectorFile
from clipdesk.store.vectors import load_vectors

KEY = "test:vector-file"


@pytest.fixture
def filled(library):
    rng = np.random.default_rng(5)
    return add_photos(library, KEY, [{"path": f"/f/{i}.jpg", "vector": rng.normal(size=32)} for i in range(300)])


def _from_db_counter(monkeypatch) -> list:
    calls = []
    real = vectors_mod._read_database

    def counting(library, key, only=None):
        calls.append(key if only is None else (key, sorted(only.tolist())))
        return real(library, key, only)

    monkeypatch.setattr(vectors_mod, "_read_database", counting)
    return calls


def test_the_file_is_read_while_current(library, filled, monkeypatch):
    calls = _from_db_counter(monkeypatch)
    first = load_vectors(library, KEY)
    assert calls == [KEY] and VectorFile(library.vectors_dir, KEY).data_path.is_file()
    again = load_vectors(library, KEY)
    assert calls == [KEY]  # the second open did not read SQLite
    assert np.array_equal(again.ids, first.ids) and np.array_equal(again.matrix, first.matrix)
    assert again.matrix.dtype == np.float32


def test_a_change_refreshes_it_from_the_rows_written_since(library, filled, monkeypatch):
    load_vectors(library, KEY)
    calls = _from_db_counter(monkeypatch)
    (new,) = add_photos(library, KEY, [{"path": "/f/new.jpg", "vector": np.ones(32)}])
    got = load_vectors(library, KEY)
    assert calls == [(KEY, [new])]  # only the new photo's row came out of SQLite
    with library.session() as s, s.begin():  # gone from disk: migration 0005's trigger bumps the generation
        s.execute(update(Photo).where(Photo.id == filled[0]).values(missing_since=datetime(2024, 1, 1)))
    got = load_vectors(library, KEY)
    assert filled[0] not in got.ids.tolist() and calls[-1] == (KEY, [])
    with library.session() as s, s.begin():  # back again: its row is read, the old file never had it
        s.execute(update(Photo).where(Photo.id == filled[0]).values(missing_since=None))
    got = load_vectors(library, KEY)
    assert calls[-1] == (KEY, [filled[0]])
    # The refreshed file holds what a full read of the database gives.
    full_ids, full = vectors_mod._read_database(library, KEY)
    assert np.array_equal(got.ids, full_ids) and np.array_equal(np.asarray(got._m16), full)
    assert new in got.ids.tolist()
    load_vectors(library, KEY)
    assert len(calls) == 4  # current again: the file alone


def test_a_refresh_writes_in_blocks_and_matches_a_full_read(library, filled, monkeypatch):
    from clipdesk.store import vector_file as vf_mod

    load_vectors(library, KEY)
    monkeypatch.setattr(vf_mod, "BLOCK", 7)
    rng = np.random.default_rng(8)
    add_photos(library, KEY, [{"path": f"/f/more{i}.jpg", "vector": rng.normal(size=32)} for i in range(20)])
    with library.session() as s, s.begin():
        s.execute(update(Photo).where(Photo.id.in_(filled[5:40:3])).values(missing_since=datetime(2024, 1, 1)))
    got = load_vectors(library, KEY)
    full_ids, full = vectors_mod._read_database(library, KEY)
    assert np.array_equal(got.ids, full_ids) and np.array_equal(np.asarray(got._m16), full)
    assert getattr(got._m16, "_mmap", None) is not None  # served from the rewritten file


@pytest.mark.parametrize("damage", ["truncate", "garbage", "manifest", "ids"])
def test_a_damaged_file_is_not_served(library, filled, monkeypatch, damage):
    truth = load_vectors(library, KEY)
    vf = VectorFile(library.vectors_dir, KEY)
    if damage == "truncate":
        vf.data_path.write_bytes(vf.data_path.read_bytes()[:-4096])
    elif damage == "garbage":
        data = bytearray(vf.data_path.read_bytes())
        data[2000:2400] = b"\x7b" * 400
        vf.data_path.write_bytes(bytes(data))
    elif damage == "manifest":
        vf.manifest_path.write_text("{")
    else:
        np.save(vf.ids_path, truth.ids[::-1].copy())
    calls = _from_db_counter(monkeypatch)
    got = load_vectors(library, KEY)
    assert calls == [KEY]
    assert np.array_equal(got.ids, truth.ids) and np.array_equal(got.matrix, truth.matrix)
