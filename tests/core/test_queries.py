"""Read-side queries used by the GUI and CLI."""

from __future__ import annotations

import shutil
from datetime import datetime

from sqlalchemy import func, select

from clipdesk.config import CoreConfig
from clipdesk.indexer import index
from clipdesk.store.models import Caption, Embedding, Label, Photo, utcnow
from clipdesk.store.queries import all_photos, folder_summaries, label_counts, photo_details, remove_folder


def _tree(tmp_path, coco_images):
    a, b = tmp_path / "a", tmp_path / "a" / "b"
    b.mkdir(parents=True)
    for src in coco_images[:2]:
        shutil.copy(src, a / src.name)
    for src in coco_images[2:5]:
        shutil.copy(src, b / src.name)
    return a, b


def test_folder_summaries_and_remove_keeps_files(library, tiny_engine, tmp_path, coco_images):
    a, b = _tree(tmp_path, coco_images)
    cfg = CoreConfig(decode_workers=0)
    index(library, [a], tiny_engine, cfg)
    index(library, [b], tiny_engine, cfg)  # a nested folder added on its own
    summary = {f.path: (f.photos, f.embedded, f.complete) for f in folder_summaries(library, tiny_engine.key)}
    assert summary == {str(a): (2, 2, True), str(b): (3, 3, True)}
    before = sorted(p.name for p in tmp_path.rglob("*.jpg"))
    assert remove_folder(library, str(a)) == 2  # b is its own library folder: kept
    assert sorted(p.name for p in tmp_path.rglob("*.jpg")) == before  # files untouched
    with library.session() as s:
        assert s.scalar(select(func.count()).select_from(Photo)) == 3
        assert s.scalar(select(func.count()).select_from(Embedding)) == 3
    assert [f.path for f in folder_summaries(library, tiny_engine.key)] == [str(b)]


def test_photo_details_labels_caption_and_browse_order(library, tiny_engine, tmp_path, coco_images):
    a, _ = _tree(tmp_path, coco_images)
    index(library, [a], tiny_engine, CoreConfig(decode_workers=0))
    rows = all_photos(library)
    assert len(rows) == 5 and all(r.path.startswith(str(a)) for r in rows)
    assert [r.path for r in all_photos(library, folder=str(a / "b"))] == sorted(str(p) for p in (a / "b").glob("*.jpg"))
    pid = rows[0].id
    with library.session() as s, s.begin():
        s.get(Photo, pid).taken_at = datetime(2030, 1, 1)
        s.add_all([
            Label(photo_id=pid, label="dog", score=0.3, source="auto", status="proposed", created_at=utcnow()),
            Label(photo_id=pid, label="cat", score=0.2, source="auto", status="rejected", created_at=utcnow()),
            Caption(photo_id=pid, text="machine words", source="auto", created_at=utcnow()),
            Caption(photo_id=pid, text="my words", source="user", created_at=utcnow()),
        ])
    d = photo_details(library, pid)
    assert d.path == rows[0].path and d.width > 0 and d.format == "JPEG"
    assert d.labels == [("dog", 0.3, "proposed")]  # rejected labels never show
    assert d.caption == "my words"  # a hand-written caption wins
    assert all_photos(library)[0].id == pid  # newest date taken first
    assert label_counts(library) == [("dog", 1)]
    assert [r.id for r in all_photos(library, label="dog")] == [pid]
    assert all_photos(library, label="cat") == []  # rejected labels never filter in
    assert photo_details(library, 10**6) is None
