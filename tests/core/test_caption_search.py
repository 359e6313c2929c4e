"""Caption keywords: the FTS5 index stays in sync, and search fuses it with CLIP."""

from __future__ import annotations

import numpy as np
import pytest
from _vecdb import FakeEncoder, add_photos
from alembic import command
from sqlalchemy import create_engine, delete, update

from clipdesk.captions.store import keyword_matches, query_words, set_user_caption, write_auto_captions
from clipdesk.search import NULL_PROMPTS, Filters, Searcher, Term
from clipdesk.store.db import Library, _alembic_config
from clipdesk.store.models import Caption, Photo

KEY = "test:captions"


def _axis(i, dim=4):
    v = np.zeros(dim, np.float32)
    v[i] = 1
    return v


@pytest.fixture
def photos(library):
    # Axis 0 "beach", 1 "dog", 3 generic. The zebra photo looks generic to CLIP.
    return add_photos(library, KEY, [
        {"path": "/p/beach.jpg", "vector": _axis(0) + 0.3 * _axis(3)},
        {"path": "/p/dog.jpg", "vector": _axis(1) + 0.3 * _axis(3)},
        {"path": "/p/zebra.jpg", "vector": _axis(3) + 0.1 * _axis(2)},
        {"path": "/q/zebra2.jpg", "vector": _axis(3)},
    ])


def _make(library, hnsw_min_size=10**9):
    texts = {p: _axis(3) for p in NULL_PROMPTS}
    texts |= {"zebra": _axis(2), "beach": _axis(0), "zebras on a beach": _axis(0) + 0.2 * _axis(2)}
    return Searcher(library, FakeEncoder(KEY, texts), hnsw_min_size=hnsw_min_size)


def test_query_words_drop_filler():
    assert query_words("A photo of the Dogs, dogs on a beach") == ["dogs", "beach"]


def test_index_follows_inserts_updates_and_deletes(library, photos):
    with library.session() as s, s.begin():
        write_auto_captions(s, {photos[0]: ("Two dogs running", 0.3)}, "m")
    set_user_caption(library, photos[1], "Grandma's café")
    assert keyword_matches(library, ["dog"]).as_dict() == {photos[0]: 1.0}  # stemmed: dogs ~ dog
    assert keyword_matches(library, ["cafe"]).as_dict() == {photos[1]: 1.0}  # diacritics folded
    assert keyword_matches(library, ["dog", "cat"]).as_dict() == {}  # all words, or a partial share for ranked photos
    assert keyword_matches(library, ["dogs", "cat", "run"], among=photos).as_dict() == {photos[0]: pytest.approx(2 / 3)}
    assert keyword_matches(library, ["run", "dog"], among=photos).as_dict() == {photos[0]: 1.0}
    assert keyword_matches(library, ["grandma", "cafés"], among=[]).as_dict() == {photos[1]: 1.0}
    with library.session() as s, s.begin():
        write_auto_captions(s, {photos[1]: ("a dog on a sofa", 0.3)}, "m")
    # One index row per photo: words from its hand-written and automatic captions match together.
    assert keyword_matches(library, ["grandma", "dog"]).as_dict() == {photos[1]: 1.0}
    set_user_caption(library, photos[1], "")
    assert keyword_matches(library, ["grandma"]).as_dict() == {}
    assert keyword_matches(library, ["sofa"]).as_dict() == {photos[1]: 1.0}
    with library.session() as s, s.begin():
        s.execute(update(Caption).where(Caption.photo_id == photos[0]).values(text="a red car"))
    assert keyword_matches(library, ["running"]).as_dict() == {}
    assert keyword_matches(library, ["car"]).as_dict() == {photos[0]: 1.0}
    with library.session() as s, s.begin():
        s.execute(delete(Photo).where(Photo.id == photos[0]))  # cascades to the caption
    assert keyword_matches(library, ["car"]).as_dict() == {}
    assert keyword_matches(library, ['"quoted" OR *']).as_dict() == {}  # user text never reaches FTS syntax


def _searcher(library):
    return _make(library)


@pytest.mark.parametrize("mode", ["exact", "hnsw"])
def test_caption_words_lift_a_photo_clip_ranks_poorly(library, photos, mode):
    def _searcher(library):  # noqa: F811 - the same searcher, in either search mode
        return _make(library, 10**9 if mode == "exact" else 1)

    assert _searcher(library).index.mode == mode
    result = _searcher(library).search([Term("text", "beach")], k=2)
    assert [h.path for h in result.hits] == ["/p/beach.jpg"]  # no captions: CLIP alone, cut-off on
    query = [Term("text", "zebras on a beach")]
    before = _searcher(library).search(query, k=4, show_all=True).hits
    assert [h.path for h in before if h.relevant] == ["/p/beach.jpg"]
    assert before[-1].path == "/q/zebra2.jpg"  # CLIP's last
    set_user_caption(library, photos[3], "a zebra on a beach")
    after = _searcher(library).search(query, k=3, show_all=True).hits
    # Every word in its caption: relevant, and first, since two signals agree on it (CLIP's 4th + captions' 1st).
    assert [h.path for h in after] == ["/q/zebra2.jpg", "/p/beach.jpg", "/p/zebra.jpg"]
    assert [h.relevant for h in after] == [True, True, False]
    assert [e["source"] for e in after[0].why] == ["caption", "clip"]
    assert after[0].why[0]["text"] == "a zebra on a beach" and after[0].score == pytest.approx(before[-1].score)
    assert [(e["source"], e.get("text")) for e in after[1].why] == [("clip", None), ("name", "beach.jpg")]
    assert [h.path for h in _searcher(library).search(query, k=3).hits] == ["/q/zebra2.jpg", "/p/beach.jpg"]
    # From outside CLIP's candidates: the caption index names the photo itself.
    assert [h.path for h in _searcher(library).search(query, k=1).hits] == ["/q/zebra2.jpg"]


def test_caption_matches_respect_filters_and_k(library, photos):
    set_user_caption(library, photos[3], "zebra")
    with library.session() as s, s.begin():
        write_auto_captions(s, {photos[2]: ("zebra", 0.2)}, "m")
    hits = _searcher(library).search([Term("text", "zebra")], k=1, show_all=True).hits
    assert [h.path for h in hits] == ["/p/zebra.jpg"]
    hits = _searcher(library).search([Term("text", "zebra")], k=5, filters=Filters(folder="/q")).hits
    assert [h.path for h in hits] == ["/q/zebra2.jpg"]
    hits = _searcher(library).search([Term("text", "zebra"), Term("text", "zebra", negative=True, weight=0.5)],
                                     k=5).hits
    assert {h.path for h in hits} >= {"/q/zebra2.jpg", "/p/zebra.jpg"}


def test_upgrade_from_0001_indexes_existing_captions(tmp_path):
    lib_dir = tmp_path / "old"
    lib_dir.mkdir()
    engine = create_engine(f"sqlite:///{lib_dir / 'clipdesk.db'}")
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        conn.exec_driver_sql(
            "INSERT INTO photos (id, path, size, mtime_ns, content_hash, format, width, height, frames, added_at) "
            "VALUES (1, '/x.jpg', 1, 1, 'h', 'JPEG', 1, 1, 1, '2020-01-01')")
        conn.exec_driver_sql("INSERT INTO captions (photo_id, text, source, created_at) "
                             "VALUES (1, 'a lighthouse at dusk', 'auto', '2020-01-01')")
    engine.dispose()
    lib = Library(lib_dir)
    try:
        assert keyword_matches(lib, ["lighthouse"]).as_dict() == {1: 1.0}
    finally:
        lib.close()


def test_without_a_stemmer_only_full_matches_count(library, photos, monkeypatch):
    import clipdesk.captions.store as store

    set_user_caption(library, photos[0], "two dogs on a beach")
    monkeypatch.setattr(store, "_porter", lambda: None)  # the packaged app ships without nltk
    assert keyword_matches(library, ["dog", "cat"], among=photos).as_dict() == {}
    assert keyword_matches(library, ["dog", "beach"], among=photos).as_dict() == {photos[0]: 1.0}
