"""The OCR pass with the shipped models: network off, generated text photos, resumable, broken files."""

from __future__ import annotations

import socket

import pytest
from rapidocr.utils.download_file import DownloadFile
from sqlalchemy import select, update

from clipdesk.imageio import read_photo
from clipdesk.jobs import CancelToken
from clipdesk.ocr.engine import OcrEngine, engine_key, model_dir
from clipdesk.ocr.run import ocr_library, ocr_status, photos_to_read
from clipdesk.ocr.samples import write_samples
from clipdesk.ocr.store import photo_status, photo_text, search_text
from clipdesk.store.db import Library
from clipdesk.store.models import OcrResult as OcrRow
from clipdesk.store.models import Photo, utcnow


def _no_network(*_args, **_kwargs):
    raise OSError("network is off in this test")


def _add_photos(lib: Library, paths) -> dict[str, int]:
    """Register files as the indexer would (hash, size), without a CLIP model."""
    ids = {}

    def write(s):
        for name, path in paths.items():
            try:
                info = read_photo(path)
                h, w, ht, size = info.content_hash, info.width, info.height, info.size
            except Exception:  # the broken file: the indexer would have recorded it, here it just gets a row
                h, w, ht, size = "broken", 1, 1, path.stat().st_size
            p = Photo(path=str(path), size=size, mtime_ns=1, content_hash=h, format="JPEG", width=w, height=ht,
                      frames=1, added_at=utcnow())
            s.add(p)
            s.flush()
            ids[name] = p.id

    lib.write(write)
    return ids


@pytest.fixture(scope="module")
def read_library(tmp_path_factory):
    """Generated photos read once with the network off, first cancelled after one batch, then resumed."""
    root = tmp_path_factory.mktemp("ocr")
    paths = write_samples(root / "photos", plain=1)
    broken = root / "photos" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    paths["broken"] = broken
    before = sorted(p.name for p in model_dir().iterdir())
    lib = Library(root / "lib")
    ids = _add_photos(lib, paths)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "getaddrinfo", _no_network)
        mp.setattr(DownloadFile, "run", _no_network)  # RapidOCR's model download: never reached
        engine = OcrEngine()  # the models load inside the first read, network off
        token = CancelToken()
        first = ocr_library(lib, engine, batch=2, progress=lambda p: p.done and token.cancel(), cancel=token)
        second = ocr_library(lib, engine, batch=2)
        third = ocr_library(lib, engine, batch=2)
    yield lib, ids, (first, second, third), engine, before
    lib.close()


def test_it_runs_offline_from_the_wheel_models(read_library):
    lib, ids, (first, second, third), engine, before = read_library
    assert sorted(p.name for p in model_dir().iterdir()) == before  # nothing was downloaded into the wheel
    assert engine.key == engine_key() and "PP-OCRv6_rec_small.onnx@" in engine.key


def test_the_words_rendered_into_photos_are_found_first(read_library):
    lib, ids, *_ = read_library
    for query, name in [(["invoice", "7391"], "invoice"), (["zimmer", "214"], "hotel"),
                        (["total", "58.20"], "invoice"), (["cafe", "lumiere"], "cafe"),
                        (["parking"], "parking"), (["rezeption"], "hotel"), (["open", "daily"], "cafe")]:
        hits = search_text(lib, query)
        assert hits and hits[0].photo_id == ids[name] and hits[0].share == 1.0, (query, hits)
    assert search_text(lib, ["sauna"]) == []  # control: a word in none of them


def test_boxes_are_in_the_photos_pixels(read_library):
    lib, ids, *_ = read_library
    lines = photo_text(lib, ids["parking"])
    assert any("PARKING" in ln.text.upper() for ln in lines)
    for ln in lines:
        assert 0.5 < ln.confidence <= 1.0
        xs, ys = [p[0] for p in ln.box], [p[1] for p in ln.box]
        assert 0 <= min(xs) < max(xs) <= 1200 and 0 <= min(ys) < max(ys) <= 800
    top = min(min(p[1] for p in ln.box) for ln in lines)
    assert 100 < top < 220  # the first line is drawn at y = 160 of 800


def test_resumable_incremental_and_failures_recorded(read_library):
    lib, ids, (first, second, third), *_ = read_library
    assert first.cancelled and first.read + first.failed == 1  # cancelled after its first photo: that one is kept
    assert second.todo == len(ids) - 1 and not second.cancelled  # continued after it
    assert third.todo == 0  # nothing new: nothing read
    assert photo_status(lib, ids["plain0"]) == ("none", None)
    status, reason = photo_status(lib, ids["broken"])
    assert status == "failed" and reason
    assert ocr_status(lib, engine_key())["with_text"] == 4


def test_a_changed_photo_or_another_engine_is_read_again(read_library):
    lib, ids, *_ = read_library
    key = engine_key()
    lib.write(lambda s: s.execute(update(Photo).where(Photo.id == ids["hotel"]).values(content_hash="changed")))
    try:
        _, todo = photos_to_read(lib, key)
        assert [pid for pid, _ in todo] == [ids["hotel"]]
        _, todo = photos_to_read(lib, "rapidocr-other-model")
        assert len(todo) == len(ids)
    finally:
        with lib.session() as s:
            real = s.scalar(select(OcrRow.content_hash).where(OcrRow.photo_id == ids["hotel"]))
        lib.write(lambda s: s.execute(update(Photo).where(Photo.id == ids["hotel"]).values(content_hash=real)))


def test_control_rapidocr_left_to_its_defaults_goes_through_its_downloader(monkeypatch):
    """The guard above can fail: RapidOCR's default config does call the patched downloader."""
    import numpy as np
    from rapidocr import RapidOCR

    monkeypatch.setattr(DownloadFile, "run", _no_network)
    with pytest.raises(Exception, match="network is off"):
        RapidOCR(params={"Global.log_level": "error"})(np.zeros((64, 64, 3), np.uint8))


class _FakeEngine:
    """Reads "PAGE <n>" from any file, and dies (like a kill) at the ``die_at``-th photo."""

    key = "fake-ocr"

    def __init__(self, die_at: int | None = None) -> None:
        self.die_at, self.calls = die_at, 0

    def read_file(self, path):
        from clipdesk.ocr.engine import OcrLine, OcrResult

        self.calls += 1
        if self.calls == self.die_at:
            raise KeyboardInterrupt  # nothing after this runs: no final commit
        box = [[0.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]]
        return OcrResult([OcrLine(f"PAGE {path.rsplit('/', 1)[-1]}", box, 0.9)], "h")


def test_a_run_killed_midway_keeps_its_committed_batches(library):
    def write(s):
        for i in range(7):
            s.add(Photo(path=f"/x/{i}.jpg", size=1, mtime_ns=1, content_hash="h", format="JPEG", width=10,
                        height=5, frames=1, added_at=utcnow()))

    library.write(write)
    with pytest.raises(KeyboardInterrupt):
        ocr_library(library, _FakeEngine(die_at=6), batch=2)  # batches 1-2 and 3-4 committed, 5 lost
    rerun = ocr_library(library, _FakeEngine(), batch=2)
    assert (rerun.todo, rerun.read) == (3, 3)
    hits = search_text(library, ["page", "4.jpg"])
    assert len(hits) == 7 and hits[0].share == 1.0 and "4.jpg" in hits[0].snippet and hits[1].share == 0.5
