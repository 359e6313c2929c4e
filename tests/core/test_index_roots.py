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


def test_pause_waits_and_unfinished_scans_are_marked(library, tiny_engine, tmp_path, coco_images):
    import threading

    from clipdesk.jobs import CancelToken
    from clipdesk.store.queries import folder_summaries

    folder = tmp_path / "many"
    folder.mkdir()
    for src in coco_images[:12]:
        shutil.copy(src, folder / src.name)
    token = CancelToken()
    paused_at = []
    resumed = threading.Event()

    def progress(p):
        if p.phase == "indexing" and p.done == 4 and not paused_at:
            token.pause()
            paused_at.append(p.done)
            # Resume from another thread once the indexer is blocked in checkpoint().
            threading.Timer(0.3, lambda: (resumed.set(), token.resume())).start()

    from clipdesk.engine.clip import ClipEngine

    tiny = ClipEngine(tiny_engine.spec, device="cpu", batch_size=4)
    report = index(library, [folder], tiny, CoreConfig(decode_workers=0), progress=progress, cancel=token)
    assert paused_at == [4] and resumed.is_set() and report.embedded == 12

    stop = CancelToken()

    def stop_early(p):
        if p.phase == "indexing" and p.done >= 4:
            stop.cancel()

    for src in coco_images[12:20]:
        shutil.copy(src, folder / src.name)
    report = index(library, [folder], tiny, CoreConfig(decode_workers=0), progress=stop_early, cancel=stop)
    assert report.cancelled
    (summary,) = folder_summaries(library, tiny.key)
    assert summary.complete is False  # the app will resume it
    assert index(library, [folder], tiny, CoreConfig(decode_workers=0)).cancelled is False
    (summary,) = folder_summaries(library, tiny.key)
    assert summary.complete is True and summary.embedded == summary.photos
