"""One ranking over every signal: reciprocal rank fusion, keyword relevance, ``why``, and sorting by date.

Known answers from constructed vectors and stored signals; each keyword
check has its control (the same query without the signal)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from _vecdb import FakeEncoder, add_photos

from clipdesk.captions.store import set_user_caption
from clipdesk.ocr.engine import OcrLine, OcrResult
from clipdesk.ocr.store import write_results
from clipdesk.search import NULL_PROMPTS, Filters, Searcher, parse_text_query
from clipdesk.search.explain import why_text
from clipdesk.search.fusion import RRF_K, WEIGHTS, fuse
from clipdesk.search.keywords import name_words
from clipdesk.store.models import Folder, Label, Photo

KEY = "test:ranking"
DIM = 6
BOX = [[0, 0], [10, 0], [10, 5], [0, 5]]


def axis(i):
    v = np.zeros(DIM, np.float32)
    v[i] = 1
    return v


def test_fusion_is_reciprocal_rank_fusion_by_hand():
    ids = np.array([10, 11, 12, 13])
    clip = np.array([0.9, 0.8, 0.7, 0.1])  # CLIP ranks 10, 11, 12, 13
    # OCR holds every word in 13, half in 12; the caption index holds every word in 11.
    out = fuse(ids, clip, {"ocr": {13: 1.0, 12: 0.5}, "caption": {11: 1.0}})
    k = RRF_K
    expect = {10: 1 / (k + 1), 11: 1 / (k + 2) + 1 / (k + 1), 12: 1 / (k + 3) + 0.5 / (k + 2),
              13: 1 / (k + 4) + 1 / (k + 1)}
    assert out.ids.tolist() == sorted(expect, key=lambda i: -expect[i]) == [11, 13, 12, 10]
    assert out.scores.tolist() == pytest.approx([expect[i] for i in out.ids.tolist()])
    assert out.clip.tolist() == [0.8, 0.1, 0.7, 0.9]  # CLIP's scores, in the fused order
    assert out.parts[0] == pytest.approx({"clip": 1 / (k + 2), "caption": 1 / (k + 1)})
    # Ties in a keyword list go to the better CLIP match; names weigh half.
    out = fuse(ids, clip, {"name": {13: 1.0, 12: 1.0}})
    assert out.parts[out.ids.tolist().index(12)]["name"] == pytest.approx(WEIGHTS["name"] / (k + 1))
    assert out.parts[out.ids.tolist().index(13)]["name"] == pytest.approx(WEIGHTS["name"] / (k + 2))
    # Equal fused scores: the better CLIP rank first, deterministically.
    out = fuse(np.array([5, 6]), np.array([0.5, 0.5]), {})
    assert out.ids.tolist() == [5, 6]


def test_name_words_split_folders_files_and_camel_case():
    assert name_words("Paris 2019/BeachDay_IMG0042.JPG") == ["paris", "2019", "beach", "day", "img", "0042"]


@pytest.fixture
def lib(library):
    # CLIP sees axis 0 as "receipt"-ish for nobody: the word photos look generic (axis 5, like the null prompts).
    ids = add_photos(library, KEY, [
        {"path": "/lib/a/sunset.jpg", "vector": axis(1), "taken_at": datetime(2021, 6, 1)},
        {"path": "/lib/a/dog.jpg", "vector": axis(2), "taken_at": datetime(2023, 1, 5)},
        {"path": "/lib/b/scan0001.png", "vector": axis(5) + 0.05 * axis(1), "taken_at": None},
        {"path": "/lib/b/scan0002.png", "vector": axis(5), "taken_at": datetime(2019, 3, 3)},
        {"path": "/lib/Zimmer/x.jpg", "vector": axis(5) + 0.02 * axis(2), "taken_at": datetime(2024, 2, 2)},
        {"path": "/lib/b/gone.png", "vector": axis(5), "missing": True},
    ])
    with library.session() as s, s.begin():
        folder = Folder(path="/lib")
        s.add(folder)
        s.flush()
        for pid in ids:
            s.get(Photo, pid).folder_id = folder.id
    return ids


def _searcher(library, **texts):
    vectors = {p: axis(5) for p in NULL_PROMPTS} | {t: axis(i) for t, i in texts.items()}
    return Searcher(library, FakeEncoder(KEY, vectors, default=axis(0)), hnsw_min_size=10**9)


def _ocr(library, lines_by_photo):
    results = {pid: OcrResult([OcrLine(t, BOX, 0.9) for t in lines], f"c{pid}") for pid, lines in lines_by_photo.items()}
    with library.session() as s, s.begin():
        write_results(s, "test-ocr", results, {})


def _paths(result):
    return [h.path.rsplit("/", 1)[-1] for h in result.hits]


def test_words_read_in_a_photo_make_it_relevant_and_first(library, lib):
    query = parse_text_query("invoice 7391")
    before = _searcher(library).search(query, k=5)
    assert before.no_good_match and before.hits == []  # control: CLIP alone cuts every photo off
    _ocr(library, {lib[3]: ["ACME GmbH", "INV0ICE #7391", "TOTAL58.20"], lib[2]: ["INVOICE 1234"]})
    after = _searcher(library).search(query, k=5)
    assert _paths(after) == ["scan0002.png"]  # a half match (only "invoice") is not relevant on its own
    why = after.hits[0].why
    assert why[0]["source"] == "ocr" and "INV0ICE #7391" in why[0]["text"]
    assert why[-1] == {"source": "clip", "score": round(after.hits[0].score, 4)}
    shown = _searcher(library).search(query, k=5, show_all=True)
    assert _paths(shown)[:2] == ["scan0002.png", "scan0001.png"]  # the half match ranks next
    assert "words in photo: “" in why_text(why)


def test_a_quoted_phrase_matches_as_a_phrase(library, lib):
    set_user_caption(library, lib[0], "a red car beside a blue van")
    set_user_caption(library, lib[1], "a blue car beside a red van")
    hits = _searcher(library).search(parse_text_query('"red car"'), k=5).hits
    assert [h.path for h in hits] == ["/lib/a/sunset.jpg"]
    # Control: unquoted, both captions hold both words.
    hits = _searcher(library).search(parse_text_query("red car"), k=5).hits
    assert {h.path for h in hits} == {"/lib/a/sunset.jpg", "/lib/a/dog.jpg"}


def test_labels_and_folder_names_count_as_keyword_hits(library, lib):
    query = parse_text_query("golden retriever")
    assert _searcher(library).search(query, k=5).hits == []  # control: no label yet
    with library.session() as s, s.begin():
        s.add(Label(photo_id=lib[4], label="golden retriever", source="user", status="accepted"))
        s.add(Label(photo_id=lib[1], label="golden retriever", source="auto", status="rejected"))
        s.add(Label(photo_id=lib[0], label="retriever", source="auto", status="proposed"))
    hits = _searcher(library).search(query, k=5).hits
    assert [h.path for h in hits] == ["/lib/Zimmer/x.jpg"]  # "retriever" alone holds half the words: not relevant
    assert [(e["source"], e.get("text")) for e in hits[0].why] == [("label", "golden retriever"), ("clip", None)]
    # A folder's name: every photo in it, the better CLIP match first.
    assert [h.path for h in _searcher(library).search(parse_text_query("zimmer"), k=5).hits] == ["/lib/Zimmer/x.jpg"]
    assert _paths(_searcher(library).search(parse_text_query("scan 0002"), k=5)) == ["scan0002.png"]


def test_keyword_hits_obey_filters_and_skip_missing_photos(library, lib):
    _ocr(library, {lib[3]: ["INVOICE 7391"], lib[5]: ["INVOICE 7391"]})
    s = _searcher(library)
    assert _paths(s.search(parse_text_query("invoice 7391"), k=5)) == ["scan0002.png"]  # gone.png is missing
    assert s.search(parse_text_query("invoice 7391"), k=5, filters=Filters(folder="/lib/a")).hits == []
    assert _paths(s.search(parse_text_query("invoice 7391"), k=5, filters=Filters(folder="/lib/b"))) == ["scan0002.png"]


def test_sort_by_date_keeps_the_same_photos(library, lib):
    s = _searcher(library, sunset=1, dog=2)
    _ocr(library, {lib[2]: ["SUNSET BLVD"], lib[4]: ["Sunset tours"]})
    by_relevance = s.search(parse_text_query("sunset"), k=3)
    by_date = s.search(parse_text_query("sunset"), k=3, sort="date")
    assert {h.photo_id for h in by_date.hits} == {h.photo_id for h in by_relevance.hits}
    # OCR's first + CLIP's second beats CLIP's first + a name hit (names weigh half).
    assert _paths(by_relevance) == ["scan0001.png", "x.jpg", "sunset.jpg"]
    assert _paths(by_date) == ["x.jpg", "sunset.jpg", "scan0001.png"]  # 2024, 2021, undated last
    assert [h.relevant for h in by_date.hits] == [True, True, True]


def test_with_an_image_in_the_query_words_only_rank(library, lib):
    from clipdesk.search import Term

    add_photos(library, KEY, [{"path": f"/lib/f/{i}.jpg", "vector": axis(4) + 0.01 * i * axis(3)} for i in range(40)])
    set_user_caption(library, lib[3], "sunset over the bay")
    s = _searcher(library, sunset=1)
    # Control: a text query's full caption hit is relevant.
    assert "scan0002.png" in _paths(s.search(parse_text_query("sunset"), k=5))
    # "Like the dog photo, at sunset": CLIP's verdict decides; the caption still lifts the photo in the ranking.
    query = [Term("photo", lib[1]), *parse_text_query("sunset")]
    relevant = s.search(query, k=5)
    assert "scan0002.png" not in _paths(relevant) and "sunset.jpg" in _paths(relevant)
    ranked = s.search(query, k=50, show_all=True).hits
    order = [h.path.rsplit("/", 1)[-1] for h in ranked]
    assert order.index("scan0002.png") < order.index("scan0001.png")  # CLIP puts it below; its caption lifts it
