"""OCR text matching: folding, dropped spaces, token rules, phrases, the trigram index, highlight boxes."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from clipdesk.ocr.engine import OcrLine, OcrResult
from clipdesk.ocr.fold import CONFUSIONS, fold_query, holds
from clipdesk.ocr.store import matched_boxes, photo_text, search_text, write_results
from clipdesk.store.models import OcrResult as OcrRow
from clipdesk.store.models import Photo, utcnow


def _holds(text: str, query: str) -> bool:
    """Every word of ``query`` is in ``text`` (as the search checks one term)."""
    return all(holds(text.split("\n"), fold_query(w)) for w in query.split())


@pytest.mark.parametrize(("read", "typed"), [
    ("INV0ICE #7391", "invoice 7391"),  # O read as 0
    ("Zimmer214", "zimmer 214"),  # the space dropped
    ("TOTAL58.20", "total 58.20"),
    ("TOTAL58.20", "total 58 20"),  # the query split at the dot
    ("Café Lumière", "cafe lumiere"),  # accents folded
    ("CAFE LUMIERE", "café lumière"),
    ("HOTEL 5TAR", "hotel star"),  # 5 read for S
    ("B1LL", "bill"),  # 1 read for I and L
    ("8OOKS", "books"),  # 8 read for B
])
def test_ocr_mistakes_still_match(read, typed):
    assert _holds(read, typed)


@pytest.mark.parametrize(("read", "typed"), [
    ("INVOICE #7391", "inv0ice 739l"),  # the other direction: the user types the look-alike
    ("Zimmer 214", "zimmer214"),
    ("SALE", "5ale"),
])
def test_confusions_fold_both_ways(read, typed):
    assert _holds(read, typed)
    for a, b in CONFUSIONS.items():
        assert fold_query(a) == fold_query(b)


@pytest.mark.parametrize(("read", "typed"), [
    ("CERTIFICATE", "cat"),  # a short word never matches inside an unrelated longer word
    ("educate", "cat"),
    ("INVOICE #7391", "invoice 7392"),  # a different number
    ("Zimmer 214", "zimmer 215"),
    ("TOTAL 58.20", "total 68.20"),
    ("PARKING", "a"),  # one character: a whole token only
    ("Level B2", "parking"),
])
def test_negative_controls(read, typed):
    assert not _holds(read, typed)


def test_short_words_match_at_token_edges():
    assert _holds("CAT5 cable", "cat")  # starts a token
    assert _holds("Zimmer214", "214")  # ends one
    assert _holds("PLATFORM 9", "9")  # a whole one-character token


def _photo(s, n: int) -> int:
    p = Photo(path=f"/x/{n}.jpg", size=1, mtime_ns=1, content_hash=f"h{n}", format="JPEG", width=1000, height=500,
              frames=1, added_at=utcnow())
    s.add(p)
    s.flush()
    return p.id


def _line(text: str, x0=100.0, y0=100.0, w=400.0, h=50.0, conf=0.99) -> OcrLine:
    return OcrLine(text, [[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], conf)


@pytest.fixture
def texts(library):
    """Five photos with stored OCR lines (constructed, no model): name -> photo id."""
    docs = {"invoice": ["INV0ICE #7391", "TOTAL58.20"], "hotel": ["Zimmer214", "Rezeption"],
            "cert": ["CERTIFICATE of merit"], "cat": ["CAT5 cable"], "blank": []}
    ids = {}

    def write(s):
        for name in docs:
            ids[name] = _photo(s, len(ids))
        write_results(s, "k", {ids[n]: OcrResult([_line(t, y0=100 + 60 * i) for i, t in enumerate(lines)], f"h{j}")
                               for j, (n, lines) in enumerate(docs.items())}, {})

    library.write(write)
    return ids


def test_search_ranks_the_photo_holding_every_word_first(library, texts):
    hits = search_text(library, ["invoice", "7391"])
    assert [h.photo_id for h in hits] == [texts["invoice"]]
    assert hits[0].share == 1.0 and "INV0ICE #7391" in hits[0].snippet
    hits = search_text(library, ["zimmer", "214", "sauna"])  # two of three words
    assert [(h.photo_id, round(h.share, 3)) for h in hits] == [(texts["hotel"], 0.667)]
    assert [h.photo_id for h in search_text(library, ["total", "58.20"])] == [texts["invoice"]]
    assert [h.photo_id for h in search_text(library, ["cat"])] == [texts["cat"]]  # not CERTIFICATE
    assert search_text(library, ["sauna"]) == []
    assert search_text(library, []) == []


def test_phrases_match_contiguously_spaces_optional(library, texts):
    assert [h.photo_id for h in search_text(library, [], ["total 58.20"])] == [texts["invoice"]]
    assert [h.photo_id for h in search_text(library, [], ["zimmer 214"])] == [texts["hotel"]]
    assert search_text(library, [], ["214 zimmer"]) == []  # the words, but not in this order
    assert search_text(library, [], ["rezeption zimmer"]) == []  # never across lines


def test_short_terms_alone_use_a_scan(library, texts):
    assert [h.photo_id for h in search_text(library, ["58"])] == [texts["invoice"]]


def test_search_uses_the_trigram_index(library, texts):
    with library.engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN SELECT rowid FROM ocr_fts WHERE ocr_fts MATCH '\"lnvolce\"'")
        assert any("VIRTUAL TABLE INDEX" in str(row) for row in plan.fetchall())
        indexed = conn.exec_driver_sql("SELECT count(*) FROM ocr_fts").scalar()
    assert indexed == 4  # the photo without text has no index row


def test_index_follows_updates_and_deletes(library, texts):
    library.write(lambda s: write_results(s, "k", {texts["hotel"]: OcrResult([_line("SAUNA")], "h9")}, {}))
    assert search_text(library, ["zimmer"]) == []
    assert [h.photo_id for h in search_text(library, ["sauna"])] == [texts["hotel"]]
    library.write(lambda s: s.execute(delete(Photo).where(Photo.id == texts["invoice"])))  # cascades
    assert search_text(library, ["invoice"]) == []
    with library.session() as s:
        assert s.scalar(select(OcrRow).where(OcrRow.photo_id == texts["invoice"])) is None


def test_photo_text_and_highlight_boxes(library, texts):
    lines = photo_text(library, texts["hotel"])
    assert [ln.text for ln in lines] == ["Zimmer214", "Rezeption"]
    boxes = matched_boxes(lines, ["214"])
    assert len(boxes) == 1
    (x0, y0), (x1, _), (_, y2), _ = boxes[0]
    # "214" is the last 3 of 9 characters of a 400 px wide line starting at x=100.
    assert (x0, x1, y0, y2) == (pytest.approx(100 + 400 * 6 / 9, abs=0.1), 500.0, 100.0, 150.0)
    assert matched_boxes(lines, ["sauna"]) == []
    assert len(matched_boxes(lines, ["zimmer", "rezeption"])) == 2
    assert photo_text(library, 10_000) == []
