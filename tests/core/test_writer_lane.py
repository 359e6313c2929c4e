"""Every database write goes through ``Library.write``: the app hands them all to its one writer lane."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event

from clipdesk.config import CoreConfig
from clipdesk.indexer import index


@pytest.fixture(autouse=True)
def small_vocabulary(tmp_path, monkeypatch):
    """Two labels instead of the shipped 290: the writes are the point here, not the encoding."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "test.yaml").write_text("labels:\n  - {name: dog, descriptors: [a wagging tail]}\n"
                                      "  - {name: beach, descriptors: [sand and sea]}\n", encoding="utf-8")
    monkeypatch.setattr("clipdesk.labels.vocab.SHIPPED", folder)


def _commits(library) -> list[str]:
    names: list[str] = []
    event.listen(library.engine, "commit", lambda _conn: names.append(threading.current_thread().name))
    return names


def _work(library, engine, folder):
    """What the app writes: index, labels, feedback, a caption, the meta, removing a folder."""
    from clipdesk.captions.store import set_user_caption
    from clipdesk.labels.feedback import set_feedback
    from clipdesk.labels.run import label_library
    from clipdesk.labels.vocab import load_vocabulary
    from clipdesk.store.queries import find_photo, remove_folder

    report = index(library, [str(folder)], engine, CoreConfig(decode_workers=0, batch_size=2))
    assert report.embedded == 3
    label_library(library, engine, load_vocabulary(library.root))
    photo = find_photo(library, str(next(folder.iterdir())))
    set_feedback(library, photo, "dog", True)
    set_user_caption(library, photo, "a test caption")
    library.set_meta("model_spec", "tiny-random")
    assert remove_folder(library, str(folder)) == 3


def test_every_write_goes_through_the_writer(library, tiny_engine, tmp_path, coco_images):
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in coco_images[:3]:
        shutil.copy(src, folder / src.name)
    lane = ThreadPoolExecutor(1, thread_name_prefix="writer-lane")
    library.writer = lambda thunk: lane.submit(thunk).result()
    commits = _commits(library)
    _work(library, tiny_engine, folder)
    lane.shutdown()
    assert len(commits) >= 8 and set(commits) == {"writer-lane_0"}


def test_without_a_writer_the_writes_happen_on_the_calling_thread(library, tiny_engine, tmp_path, coco_images):
    """Control: the listener sees where commits happen (the CLI's case: inline)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for src in coco_images[:3]:
        shutil.copy(src, folder / src.name)
    commits = _commits(library)
    _work(library, tiny_engine, folder)
    assert commits and set(commits) == {threading.current_thread().name}
