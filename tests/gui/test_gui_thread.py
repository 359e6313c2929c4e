"""The GUI thread never reads the database or opens a photo: a scripted session with tripwires.

Launch the app, drop a folder, let it index, select photos (details, preview),
search by text and by example, open the dialogs, label and review, caption,
export sidecars, ask for a tune and a revert, with ``Library.session`` and every way a photo file gets
opened (``open``, ``os.open``, Pillow) recording the calls made on the GUI
thread. The lanes do the work; the session must leave the tripwires untouched.
A control shows the tripwires fire when the GUI thread does read.

Also: only ``gui/lanes.py`` makes thread pools (three lanes in all), and the
ordering tests replace wall-clock responsiveness checks: a search asked for
in the middle of indexing is answered between two of its batches, and a
paused job starts no batch until it is resumed.
"""

from __future__ import annotations

import builtins
import os
import re
import threading
import time
import traceback
from pathlib import Path

import pytest
from PIL import Image

from clipdesk.config import CoreConfig
from clipdesk.gui.controller import LibraryController, SearchRequest
from clipdesk.gui.lanes import Lane, current_lane
from clipdesk.gui.main_window import MainWindow
from clipdesk.gui.settings import Settings
from clipdesk.search import Term, parse_text_query
from clipdesk.store.db import Library

GUI = Path(__file__).resolve().parents[2] / "clipdesk" / "gui"


class Tripwires:
    """Records database sessions and photo-file opens made on the GUI (main) thread."""

    def __init__(self, monkeypatch, photo_root: Path) -> None:
        self.hits: list[str] = []
        self.armed = False
        self.root = str(photo_root)
        main = threading.main_thread()

        def trip(what: str) -> None:
            if self.armed and threading.current_thread() is main:
                self.hits.append(what + "\n" + "".join(traceback.format_stack(limit=12)[:-2]))

        real_session = Library.session

        def session(library):
            trip("Library.session()")
            return real_session(library)

        def is_photo(path) -> bool:
            try:
                return os.fspath(path).startswith(self.root)
            except TypeError:
                return False  # a file descriptor or a file object

        real_open, real_os_open, real_pil_open = builtins.open, os.open, Image.open

        def guarded_open(file, *args, **kwargs):
            if is_photo(file):
                trip(f"open({file})")
            return real_open(file, *args, **kwargs)

        def guarded_os_open(path, *args, **kwargs):
            if is_photo(path):
                trip(f"os.open({path})")
            return real_os_open(path, *args, **kwargs)

        def guarded_pil_open(fp, *args, **kwargs):
            if is_photo(fp):
                trip(f"Image.open({fp})")
            return real_pil_open(fp, *args, **kwargs)

        monkeypatch.setattr(Library, "session", session)
        monkeypatch.setattr(builtins, "open", guarded_open)
        monkeypatch.setattr(os, "open", guarded_os_open)
        monkeypatch.setattr(Image, "open", guarded_pil_open)


@pytest.fixture
def session(qtbot, tmp_path, photos, monkeypatch):
    shipped = tmp_path / "shipped"  # two labels, not the shipped 290: the session's threads are the point
    shipped.mkdir()
    (shipped / "test.yaml").write_text("labels:\n  - {name: dog, descriptors: [a wagging tail]}\n"
                                       "  - {name: beach, descriptors: [sand and sea]}\n", encoding="utf-8")
    monkeypatch.setattr("clipdesk.labels.vocab.SHIPPED", shipped)
    """The app as ``gui/app.launch`` builds it, with tripwires armed once the window exists."""
    wires = Tripwires(monkeypatch, photos)
    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=4))
    window = MainWindow(controller, Settings())
    qtbot.addWidget(window)
    window.show()
    wires.armed = True
    with qtbot.waitSignal(controller.model_state, timeout=60000, check_params_cb=lambda s, m: s == "ready"):
        controller.load_model()
    yield window, wires
    wires.armed = False
    controller.shutdown()


def test_a_whole_session_leaves_the_gui_thread_alone(session, qtbot, photos, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    window, wires = session
    controller = window.controller
    with qtbot.waitSignal(controller.index_finished, timeout=120000) as done:
        window.add_paths([str(photos)])  # what a drop does
    assert done.args[0].new == 7
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == 7, timeout=20000)

    first = window.grid_model.item(0)
    with qtbot.waitSignal(window.detail.preview_loaded, timeout=20000):
        window.grid.setCurrentIndex(window.grid_model.index(0))  # details + preview + captions
    qtbot.waitUntil(lambda: window.detail.path_label.text() == first.path, timeout=10000)

    with qtbot.waitSignal(controller.search_finished, timeout=30000):
        window.search_bar.set_text("a dog on a beach")
        window.run_query(window.search_bar.request())
    with qtbot.waitSignal(controller.search_finished, timeout=30000):
        window.find_similar(first.photo_id)  # a library photo as the query: resolved off this thread
    with qtbot.waitSignal(controller.search_finished, timeout=30000):
        window.search_bar.set_text("")
        window.search_bar.set_image(str(photos / "copy_small.jpg"))
        window.run_query(window.search_bar.request())

    from clipdesk.gui.dialogs import ErrorsDialog, PreviewDialog
    from clipdesk.gui.model_dialog import ModelDialog

    errors = ErrorsDialog(controller.library, window, tasks=controller.tasks)
    qtbot.addWidget(errors)
    with qtbot.waitSignal(errors.loaded, timeout=10000):
        errors.show()
    preview = PreviewDialog(first.path, window, tasks=controller.tasks)
    qtbot.addWidget(preview)
    qtbot.waitUntil(lambda: preview.image_label.pixmap() is not None and not preview.image_label.pixmap().isNull(),
                    timeout=20000)
    dialog = ModelDialog(window, current="tiny-random", device="cpu", tasks=controller.tasks)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.facts is not None, timeout=60000)
    with qtbot.waitSignal(dialog.validated, timeout=30000):
        dialog.custom_edit.setText(f"ViT-B-32:{photos / 'nope.pt'}")

    with qtbot.waitSignal(controller.labels_finished, timeout=120000):
        controller.run_labels()
    queue = []
    controller.review_queue(queue.append, lambda exc: queue.append(exc), limit=5)
    qtbot.waitUntil(lambda: bool(queue), timeout=30000)
    assert not isinstance(queue[0], BaseException)
    if queue[0]:
        item = queue[0][0]
        with qtbot.waitSignal(controller.feedback_saved, timeout=10000):
            controller.set_feedback(item.photo_id, item.label, True)

    captions = window.captions
    captions.caption_model, captions.max_len = "tiny-coca", 6
    window.grid.selectAll()
    with qtbot.waitSignal(captions.job_finished, timeout=120000):
        captions.caption_selected()
    with qtbot.waitSignal(controller.jobs.finished, timeout=60000,
                          check_params_cb=lambda job, _r: job.kind == "export"):
        monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
        window.labels.export_xmp()
    tune = window.tune_for_library()  # status on the IO lane, the tune job on the inference lane
    qtbot.waitUntil(lambda: tune.status is not None, timeout=10000)
    with qtbot.waitSignal(controller.tune_failed, timeout=60000):  # 7 photos: too few, said in the dialog
        tune.tune_button.click()
    with qtbot.waitSignal(controller.tuning_reverted, timeout=30000):  # nothing to revert; the round trip is the point
        tune.revert()  # QMessageBox.question answers Yes (above)
    controller.tasks.wait()
    qtbot.wait(50)  # deliver what the lanes posted last
    assert wires.hits == [], "\n\n".join(wires.hits[:3])


def test_the_tripwires_catch_a_read_on_the_gui_thread(session, photos):
    """Control: the same tripwires see a database read and a photo open done here."""
    window, wires = session
    window.controller.library.get_meta("model_spec")
    with open(next(photos.glob("*.jpg")), "rb"):
        pass
    assert len(wires.hits) == 2 and "Library.session()" in wires.hits[0] and "open(" in wires.hits[1]


def test_only_the_task_manager_makes_thread_pools():
    """Three lanes in all: no other module in the app starts pools, runnables or threads."""
    pattern = re.compile(r"QThreadPool\(|globalInstance\(|\(QRunnable\)|threading\.Thread\(|QThread\(")
    offenders = [f"{path.relative_to(GUI)}:{n}" for path in sorted(GUI.rglob("*.py")) if path.name != "lanes.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
    lanes = (GUI / "lanes.py").read_text()
    assert lanes.count("QThreadPool(") == 1 and "for lane, threads in" in lanes  # one pool per lane


def test_a_search_during_indexing_is_answered_between_batches(qtbot, tmp_path, photos, monkeypatch):
    """The inference lane is one thread; a query's encoding still does not wait for the whole job."""
    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=2))
    with qtbot.waitSignal(controller.index_finished, timeout=120000):
        controller.add_roots([str(photos / "copy_small.jpg")])  # something to search
    engine = controller.engine
    events: list[tuple[str, str]] = []  # (event, thread name), in order
    real_pixels, real_text = engine.encode_pixels, engine.encode_text
    asked = threading.Event()

    def pixels(batch):
        events.append(("batch", threading.current_thread().name))
        if len([e for e in events if e[0] == "batch"]) == 1:
            asked.wait(30)  # the search is asked for while the first batch is being encoded
        return real_pixels(batch)

    def text(texts):
        events.append(("text", threading.current_thread().name))
        return real_text(texts)

    monkeypatch.setattr(engine, "encode_pixels", pixels)
    monkeypatch.setattr(engine, "encode_text", text)
    order = []
    controller.search_finished.connect(lambda *_a: order.append("search"))
    controller.index_finished.connect(lambda *_a: order.append("index"))
    controller.add_roots([str(photos)])
    qtbot.waitUntil(lambda: any(e[0] == "batch" for e in events), timeout=60000)
    controller.search(SearchRequest(parse_text_query("a dog"), k=3))
    # The search's IO hop runs, then queues its encoding as urgent behind the batch being encoded.
    qtbot.waitUntil(lambda: bool(controller.tasks._urgent), timeout=30000)  # noqa: SLF001
    asked.set()
    qtbot.waitUntil(lambda: len(order) == 2, timeout=120000)
    assert order == ["search", "index"]  # answered before the 7-photo job (4 batches) ended
    batches = [i for i, e in enumerate(events) if e[0] == "batch"]
    first_text = next(i for i, e in enumerate(events) if e[0] == "text")
    assert batches[0] < first_text < batches[-1]  # between two batches of the job
    names = {name for _e, name in events}
    assert len(names) == 1 and threading.main_thread().name not in names  # one inference thread, not the GUI's
    controller.shutdown()


def test_a_paused_job_starts_no_batch_until_resumed(qtbot, tmp_path, photos, monkeypatch):
    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=1))
    engine = controller.engine
    engine.model  # noqa: B018 - loaded, so the job's first batch is the first encode
    starts: list[float] = []
    pressed = threading.Event()
    real = engine.encode_pixels

    def encode(batch):
        starts.append(time.monotonic())
        if len(starts) == 1:
            pressed.wait(30)  # Pause is pressed while the first batch is under way
        return real(batch)

    monkeypatch.setattr(engine, "encode_pixels", encode)
    with qtbot.waitSignal(controller.index_finished, timeout=120000) as done:
        controller.add_roots([str(photos)])
        qtbot.waitUntil(lambda: bool(starts), timeout=60000)
        controller.pause()
        paused_at = time.monotonic()
        pressed.set()
        qtbot.wait(600)  # room for batches to start, if pausing did not hold them
        resumed_at = time.monotonic()
        during = [t for t in starts if paused_at < t < resumed_at]
        controller.resume()
    assert during == []  # the batch under way finished; none started while paused
    assert done.args[0].embedded == 7 and sum(t > resumed_at for t in starts) == 6
    controller.shutdown()


def test_cancel_drops_queued_jobs_and_reports_the_running_one(qtbot, tmp_path, photos):
    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=2))
    with qtbot.waitSignal(controller.index_started, timeout=10000):
        controller.add_roots([str(photos)])
    controller.run_labels()  # queued behind the index job
    assert [j.kind for j in controller.jobs.jobs()] == ["index", "labels"]
    controller.pause()
    with qtbot.waitSignal(controller.index_finished, timeout=60000) as done:
        controller.cancel()
    assert done.args[0].cancelled
    qtbot.waitUntil(lambda: controller.jobs.current is None, timeout=10000)
    assert controller.jobs.jobs() == []  # Cancel stops what was queued behind it too
    controller.shutdown()


def test_inline_lanes_run_at_once_and_in_order():
    """Picard's FakeThreadPool: with inline=True every lane runs on the calling thread, immediately."""
    from clipdesk.gui.lanes import Job, JobQueue, Lane, TaskManager

    tasks = TaskManager(inline=True)
    seen = []
    for lane in Lane:
        tasks.run(lane, lambda lane=lane: (lane, threading.current_thread()), seen.append)
    assert [lane for lane, _t in seen] == list(Lane) and {t for _l, t in seen} == {threading.current_thread()}
    queue = JobQueue(tasks)
    results = []
    queue.finished.connect(lambda job, result: results.append((job.kind, result)))
    queue.submit(Job("a", "first", lambda progress, cancel: 1))
    queue.submit(Job("b", "second", lambda progress, cancel: 2))
    assert results == [("a", 1), ("b", 2)]
    failing = []
    tasks.run(Lane.IO, lambda: 1 / 0, None, failing.append)
    assert isinstance(failing[0], ZeroDivisionError)
    cancelled = tasks.run(Lane.IO, lambda: None)
    cancelled.cancel()
    assert cancelled.started  # inline: it had already run; a cancel after the fact is harmless


def test_call_waits_for_another_lane_and_re_raises(qtbot):
    from clipdesk.gui.lanes import Lane, TaskManager, current_lane

    tasks = TaskManager()
    assert tasks.call(Lane.WRITER, current_lane) is Lane.WRITER
    with pytest.raises(ZeroDivisionError):
        tasks.call(Lane.IO, lambda: 1 / 0)
    inner = tasks.call(Lane.WRITER, lambda: tasks.call(Lane.WRITER, current_lane))  # no deadlock on its own lane
    assert inner is Lane.WRITER
    tasks.shutdown()


def test_the_term_types_a_search_sends(session):
    """The window never looks a query image up itself: it sends a file term, the controller resolves it."""
    window, _ = session
    assert window._image_term("/x/y.jpg") == Term("file", "/x/y.jpg")  # noqa: SLF001


def test_a_result_for_a_closed_widget_is_dropped(qtbot):
    """A read finishing after its widget closed must not touch it (Qt drops signals to deleted receivers;
    the task manager does the same for callbacks)."""
    from PySide6.QtWidgets import QLabel

    from clipdesk.gui.lanes import Lane, TaskManager

    tasks = TaskManager()
    gate = threading.Event()
    label = QLabel()
    bound = tasks.run(Lane.IO, lambda: (gate.wait(10), "late")[1], label.setText)
    closure = tasks.run(Lane.IO, lambda: (gate.wait(10), "late")[1], lambda text: label.setText(text))
    label.deleteLater()
    qtbot.wait(50)  # the label is gone before the results arrive
    gate.set()
    qtbot.waitUntil(lambda: bound.finished and closure.finished, timeout=10000)  # no exception reached Qt
    seen = []
    kept = QLabel()
    qtbot.addWidget(kept)
    tasks.run(Lane.IO, lambda: "on time", lambda text: (kept.setText(text), seen.append(text)))
    qtbot.waitUntil(lambda: seen == ["on time"], timeout=10000)  # control: a live widget still gets its result
    assert kept.text() == "on time"
    tasks.shutdown()


def test_the_search_graph_calibrates_on_prompts_the_inference_lane_encodes(qtbot, tmp_path, photos, monkeypatch):
    """A large library's graph (threshold 1 here) gets its text probes from the model, encoded on the inference
    lane while the graph's own thread waits: never on the GUI thread, never on the graph's or an IO thread."""
    import json

    from clipdesk.search.probes import PROBE_PROMPTS

    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=4, hnsw_min_size=1))
    with qtbot.waitSignal(controller.index_finished, timeout=120000):
        controller.add_roots([str(photos)])
    engine = controller.engine
    encoded_on: list[str] = []
    real_text = engine.encode_text

    def text(texts):
        if list(texts) == list(PROBE_PROMPTS):
            encoded_on.append((threading.current_thread().name, current_lane()))
        return real_text(texts)

    monkeypatch.setattr(engine, "encode_text", text)
    with qtbot.waitSignal(controller.search_finished, timeout=60000):
        controller.search(SearchRequest(parse_text_query("a dog"), k=3))

    def calibrated():
        found = [p for p in (tmp_path / "lib").glob("**/*.json") if '"calibration"' in p.read_text()]
        return json.loads(found[0].read_text())["calibration"] if found else None

    qtbot.waitUntil(lambda: calibrated() is not None, timeout=60000)
    assert calibrated()["text_probes"] == "model"
    with qtbot.waitSignal(controller.search_finished, timeout=60000):
        controller.search(SearchRequest(parse_text_query("a cat"), k=3))
    assert len(encoded_on) == 1  # once, then kept
    name, lane = encoded_on[0]
    assert lane is Lane.INFERENCE and name != threading.main_thread().name
    controller.shutdown()


def test_a_large_library_that_changed_answers_from_its_previous_vectors_while_the_new_ones_are_read(
        qtbot, tmp_path, photos, coco_images, monkeypatch):
    """After an indexing run, a library searched through its graph (threshold 1 here, as one of 300k photos)
    answers the next search at once from the vectors it has, drops photos gone since, and switches to the new
    vectors once they are read: the search does not wait for the refresh."""
    import shutil

    from clipdesk.search import searcher as searcher_mod

    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0, batch_size=4, hnsw_min_size=1))
    with qtbot.waitSignal(controller.index_finished, timeout=120000):
        controller.add_roots([str(photos)])
    results = []
    controller.search_finished.connect(lambda _rid, found: results.append(found))

    def search(text="a photo"):
        with qtbot.waitSignal(controller.search_finished, timeout=60000):
            controller.search(SearchRequest(parse_text_query(text), k=20, show_all=True))
        return {h.path.rsplit("/", 1)[-1] for h in results[-1].hits}

    first = search()
    assert len(first) == 7
    gate = threading.Event()
    real_init = searcher_mod.Searcher.__init__

    def slow_init(self, *args, **kwargs):  # the refresh's read of the new vectors, held back
        assert gate.wait(60)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(searcher_mod.Searcher, "__init__", slow_init)
    shutil.copy(coco_images[10], photos / coco_images[10].name)
    (photos / coco_images[1].name).unlink()
    with qtbot.waitSignal(controller.index_finished, timeout=120000):
        controller.add_roots([str(photos)])
    during = search()  # answered by the previous generation's searcher while the new one is held back
    assert coco_images[1].name not in during and coco_images[10].name not in during and len(during) == 6
    gate.set()
    qtbot.waitUntil(lambda: coco_images[10].name in search(), timeout=60000)
    assert coco_images[1].name not in search()
    controller.shutdown()
