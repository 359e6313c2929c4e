"""A folder that is temporarily unavailable is not a folder whose photos were deleted."""

from __future__ import annotations

import shutil

from sqlalchemy import func, select

from clipdesk.config import CoreConfig
from clipdesk.indexer import index
from clipdesk.store.models import Photo, ScanError


def test_unmounted_root_keeps_its_photos(library, tiny_engine, tmp_path, coco_images):
    drive = tmp_path / "drive"
    drive.mkdir()
    for src in coco_images[:3]:
        shutil.copy(src, drive / src.name)
    cfg = CoreConfig(decode_workers=0)
    assert index(library, [drive], tiny_engine, cfg).new == 3
    drive.rename(tmp_path / "elsewhere")  # the drive is unplugged
    report = index(library, [drive], tiny_engine, cfg)
    assert report.missing == 0
    with library.session() as s:
        assert s.scalar(select(func.count()).select_from(Photo).where(Photo.missing_since.is_(None))) == 3
        assert s.scalar(select(ScanError.reason).where(ScanError.path == str(drive))).startswith("cannot open folder")
    (tmp_path / "elsewhere").rename(drive)  # plugged back in: nothing to redo
    again = index(library, [drive], tiny_engine, cfg)
    assert (again.unchanged, again.embedded, again.missing) == (3, 0, 0)
    with library.session() as s:
        assert s.scalar(select(func.count()).select_from(ScanError)) == 0
