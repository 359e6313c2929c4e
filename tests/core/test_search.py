"""Search mechanics with constructed vectors: known answers, any model."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from _vecdb import FakeEncoder, add_photos

from clipdesk.errors import QueryError
from clipdesk.search import NULL_PROMPTS, Filters, Searcher, Term, parse_text_query

KEY = "test:constructed"
DIM = 8


def axis(i: int, scale: float = 1.0) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = scale
    return v


# Axis meaning in these tests: 0 beach, 1 people, 2 night, 3 dog, 7 "generic photo".
BEACH, PEOPLE, NIGHT, DOG, GENERIC = 0, 1, 2, 3, 7


def _texts(**extra) -> dict[str, np.ndarray]:
    texts = {p: axis(GENERIC) for p in NULL_PROMPTS}
    texts.update(extra)
    return texts


@pytest.fixture
def photos(library):
    items = [
        {"path": "/p/a/beach_empty.jpg", "vector": axis(BEACH) + 0.5 * axis(GENERIC), "taken_at": datetime(2020, 6, 1)},
        {"path": "/p/a/beach_crowd.jpg", "vector": axis(BEACH) + 0.9 * axis(PEOPLE) + 0.5 * axis(GENERIC),
         "taken_at": datetime(2021, 6, 1)},
        {"path": "/p/b/party_night.png", "vector": axis(PEOPLE) + axis(NIGHT) + 0.5 * axis(GENERIC), "format": "PNG",
         "taken_at": datetime(2022, 1, 1)},
        {"path": "/p/b/dog.jpg", "vector": axis(DOG) + 0.5 * axis(GENERIC)},
        {"path": "/p/b/dog_copy.jpg", "vector": axis(DOG) + 0.52 * axis(GENERIC) + 0.02 * axis(BEACH)},
        {"path": "/p/gone/beach_lost.jpg", "vector": axis(BEACH), "missing": True},
    ]
    ids = add_photos(library, KEY, items)
    return dict(zip([i["path"].rsplit("/", 1)[1] for i in items], ids, strict=True))


def searcher(library, **texts) -> Searcher:
    return Searcher(library, FakeEncoder(KEY, _texts(**texts)), hnsw_min_size=10**9)


def paths(result) -> list[str]:
    return [h.path.rsplit("/", 1)[1] for h in result.hits]


def test_parse_plain_words_form_one_phrase():
    terms = parse_text_query("dog on a beach")
    assert [(t.value, t.weight, t.negative) for t in terms] == [("dog on a beach", 1.0, False)]


def test_parse_negatives_weights_and_extra_positives():
    terms = parse_text_query('beach -people +"at night":0.5 -"red car":2 sunset:1.5')
    got = [(t.value, t.weight, t.negative) for t in terms]
    assert got == [("beach", 1.0, False), ("people", 1.0, True), ("at night", 0.5, False),
                   ("red car", 2.0, True), ("sunset", 1.5, False)]


@pytest.mark.parametrize("bad", ["-people", '"unclosed quote', "-a -b"])
def test_parse_rejects_unusable_queries(bad):
    with pytest.raises(QueryError):
        parse_text_query(bad)


def test_text_search_ranks_by_similarity_and_skips_missing(library, photos):
    result = searcher(library, beach=axis(BEACH)).search(parse_text_query("beach"), k=10)
    assert paths(result)[:2] == ["beach_empty.jpg", "beach_crowd.jpg"]
    assert "beach_lost.jpg" not in paths(result)  # file gone from disk
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    assert not result.no_good_match


def test_negative_term_demotes_matching_photos(library, photos):
    s = searcher(library, beach=axis(BEACH), people=axis(PEOPLE))
    result = s.search(parse_text_query("beach -people"), k=10, show_all=True)
    order = paths(result)
    assert order[0] == "beach_empty.jpg"
    assert order.index("beach_crowd.jpg") > order.index("beach_empty.jpg")
    assert order.index("party_night.png") == len(order) - 1


def test_weights_shift_the_ranking(library, photos):
    s = searcher(library, people=axis(PEOPLE), night=axis(NIGHT), beach=axis(BEACH))
    assert paths(s.search(parse_text_query("beach people:0.8"), k=1))[0] == "beach_crowd.jpg"
    assert paths(s.search(parse_text_query("beach people:0.1"), k=1))[0] == "beach_empty.jpg"
    assert paths(s.search(parse_text_query("people +night:3"), k=1))[0] == "party_night.png"


def test_no_good_match_instead_of_unrelated_photos(library, photos):
    # "giraffe" points where no photo is; every photo is closer to the generic prompts.
    s = searcher(library, giraffe=axis(5))
    result = s.search(parse_text_query("giraffe"), k=5)
    assert result.no_good_match and result.hits == []
    shown = s.search(parse_text_query("giraffe"), k=5, show_all=True)
    assert len(shown.hits) == 5 and not any(h.relevant for h in shown.hits)


def test_min_score_overrides_the_automatic_cutoff(library, photos):
    s = searcher(library, dog=axis(DOG))
    result = s.search(parse_text_query("dog"), k=10, min_score=0.5)
    assert set(paths(result)) == {"dog.jpg", "dog_copy.jpg"}
    assert all(h.score >= 0.5 for h in result.hits)


def test_similar_by_library_photo_excludes_itself_and_finds_the_copy(library, photos):
    s = searcher(library)
    result = s.search([Term("photo", photos["dog.jpg"])], k=3, show_all=True)
    assert paths(result)[0] == "dog_copy.jpg"
    assert photos["dog.jpg"] not in [h.photo_id for h in result.hits]


def test_image_query_cutoff_keeps_only_standouts(library, photos):
    rng = np.random.default_rng(0)
    filler = [{"path": f"/p/filler/{i}.jpg", "vector": np.abs(rng.normal(size=DIM)) * [0, 0, 0, 0, 1, 1, 1, 1]}
              for i in range(60)]
    add_photos(library, KEY, filler)
    s = searcher(library)
    result = s.search([Term("photo", photos["dog.jpg"])], k=10)
    assert paths(result) == ["dog_copy.jpg"]  # the near-duplicate alone stands out
    assert result.hits[0].relevant and not result.no_good_match
    lonely = Searcher(library, FakeEncoder(KEY, _texts(), files={"/q/x.jpg": axis(5) + axis(6) + axis(4)}),
                      hnsw_min_size=10**9).search([Term("file", "/q/x.jpg")], k=10)
    # Like most filler photos and unlike nothing in particular: no standout.
    assert len(lonely.hits) < 10


def test_tiny_library_image_query_lists_everything(library, photos):
    # Too few photos to estimate what "unusually similar" means: no cut-off.
    result = searcher(library).search([Term("photo", photos["dog.jpg"])], k=10)
    assert len(result.hits) == 4


def test_image_file_plus_text(library, photos):
    enc = FakeEncoder(KEY, _texts(**{"at night": axis(NIGHT)}), files={"/q/people.jpg": axis(PEOPLE)})
    s = Searcher(library, enc, hnsw_min_size=10**9)
    result = s.search([Term("file", "/q/people.jpg"), *parse_text_query("at night")], k=1, show_all=True)
    assert paths(result) == ["party_night.png"]


def test_filters_folder_type_and_dates(library, photos):
    s = searcher(library, beach=axis(BEACH))
    q = parse_text_query("beach")
    assert set(paths(s.search(q, k=10, filters=Filters(folder="/p/b"), show_all=True))) == {
        "party_night.png", "dog.jpg", "dog_copy.jpg"}
    assert paths(s.search(q, k=10, filters=Filters(types=("png",)), show_all=True)) == ["party_night.png"]
    dated = s.search(q, k=10, filters=Filters(date_from=datetime(2021, 1, 1), date_to=datetime(2021, 12, 31)),
                     show_all=True)
    assert paths(dated) == ["beach_crowd.jpg"]
    assert s.search(q, k=10, filters=Filters(folder="/elsewhere")).hits == []


def test_cutoff_off_lists_top_k(library, photos):
    s = Searcher(library, FakeEncoder(KEY, _texts(giraffe=axis(5))), hnsw_min_size=10**9, cutoff=False)
    result = s.search(parse_text_query("giraffe"), k=3)
    assert len(result.hits) == 3 and all(h.relevant for h in result.hits)


def test_empty_library_says_no_match(library):
    s = searcher(library, beach=axis(BEACH))
    result = s.search(parse_text_query("beach"))
    assert result.no_good_match and result.hits == []


def test_cancelling_terms_are_an_error(library, photos):
    s = searcher(library, beach=axis(BEACH))
    with pytest.raises(QueryError):
        s.search([Term("text", "beach"), Term("text", "beach", negative=True)])


def test_hnsw_and_exact_agree(library, photos):
    exact = searcher(library, beach=axis(BEACH)).search(parse_text_query("beach"), k=2, show_all=True)
    approx = Searcher(library, FakeEncoder(KEY, _texts(beach=axis(BEACH))), hnsw_min_size=0)
    result = approx.search(parse_text_query("beach"), k=2, show_all=True)
    assert result.mode == "hnsw" and exact.mode == "exact"
    assert paths(result) == paths(exact)
    np.testing.assert_allclose([h.score for h in result.hits], [h.score for h in exact.hits], atol=1e-5)


def test_photo_id_filter_restricts_results(library, photos):
    s = searcher(library, beach=axis(BEACH))
    only = frozenset({photos["dog.jpg"], photos["beach_crowd.jpg"]})
    result = s.search(parse_text_query("beach"), k=10, filters=Filters(photo_ids=only), show_all=True)
    assert paths(result) == ["beach_crowd.jpg", "dog.jpg"]
    assert s.search(parse_text_query("beach"), k=10, filters=Filters(photo_ids=frozenset())).hits == []


def test_a_photo_gone_since_the_vectors_were_read_is_not_shown(library, photos):
    from sqlalchemy import update

    from clipdesk.store.models import Photo

    s = searcher(library, beach=axis(BEACH))
    before = paths(s.search(parse_text_query("beach"), k=5, show_all=True))
    assert "beach_empty.jpg" in before
    with library.session() as db, db.begin():  # moved to the trash; this searcher's vectors predate that
        db.execute(update(Photo).where(Photo.id == photos["beach_empty.jpg"]).values(missing_since=datetime(2024, 1, 1)))
    after = paths(s.search(parse_text_query("beach"), k=5, show_all=True))
    assert "beach_empty.jpg" not in after and after == [p for p in before if p != "beach_empty.jpg"]
