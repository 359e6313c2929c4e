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

    def counting(library, key):
        calls.append(key)
        return real(library, key)

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


def test_a_change_makes_it_stale(library, filled, monkeypatch):
    load_vectors(library, KEY)
    calls = _from_db_counter(monkeypatch)
    (new,) = add_photos(library, KEY, [{"path": "/f/new.jpg", "vector": np.ones(32)}])
    assert new in load_vectors(library, KEY).ids.tolist() and len(calls) == 1
    with library.session() as s, s.begin():  # gone from disk: migration 0005's trigger bumps the generation
        s.execute(update(Photo).where(Photo.id == filled[0]).values(missing_since=datetime(2024, 1, 1)))
    assert filled[0] not in load_vectors(library, KEY).ids.tolist() and len(calls) == 2
    load_vectors(library, KEY)
    assert len(calls) == 2  # current again


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
