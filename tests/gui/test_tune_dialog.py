"""Tools ▸ Tune for my library…: the dialog, the tune job on the inference lane, and searches following it.

The mechanics (progress, cancel, a dialog closed mid-run) use a fake
``tuning.run.tune``; the switch of searches to the tuned vectors and back
uses the real core on a constructed space, as in tests/core/test_tuning.py:
photo identities plus a nuisance subspace that every edit pushes along, so
the base space is distorted, tuning helps and the guard keeps it, in seconds
and without model weights. Indexing a tuned library uses the tiny model and a
tuning made by hand.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import shiboken6
from PySide6.QtWidgets import QMessageBox

from clipdesk.config import CoreConfig
from clipdesk.errors import QueryError
from clipdesk.gui.controller import LibraryController, SearchRequest
from clipdesk.gui.lanes import Lane, current_lane
from clipdesk.gui.tune_dialog import TuneDialog
from clipdesk.jobs import Progress
from clipdesk.search import Term
from clipdesk.store.models import Caption
from clipdesk.store.vectors import load_vectors
from clipdesk.tuning import state
from clipdesk.tuning.heads import Head, Heads, save_heads
from clipdesk.tuning.run import TuneOptions, TuneReport

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from _tuning_space import CodedViews, GeneratedEngine, Generator  # noqa: E402
from _vecdb import add_photos  # noqa: E402

KEY = "test:gui-tuning"
N = 120
FIGURES = {"near_duplicates": {"n": 24, "mAP@100": 0.25, "R@1": 0.125},
           "heldout_captions": {"n": 24, "R@1": 0.5, "R@5": 0.75, "R@10": 0.875}}
AFTER = {"near_duplicates": {"n": 24, "mAP@100": 0.4, "R@1": 0.25},
         "heldout_captions": {"n": 24, "R@1": 0.5, "R@5": 0.75, "R@10": 0.875}}


class SpaceEngine(GeneratedEngine):
    """The constructed space's engine as the app holds it (a spec, a device), recording the threads it ran on."""

    key = KEY
    spec = SimpleNamespace(name="constructed", label="constructed", random_init=True)
    device = "cpu"

    def __init__(self, space: Generator) -> None:
        super().__init__(space)
        self.threads: set[str] = set()

    def encode_pixels(self, pixels):
        self.threads.add(threading.current_thread().name)
        return super().encode_pixels(pixels)


@pytest.fixture
def no_coco(tmp_path, monkeypatch):
    """No shared coco_mini: the constructed engine cannot encode its files."""
    monkeypatch.setenv("CLIPDESK_SHARED_DATA", str(tmp_path / "no-shared-data"))


@pytest.fixture
def constructed(qtbot, tmp_path, monkeypatch, no_coco):
    """A controller whose library holds N photos with constructed base vectors and two captions each."""
    controller = LibraryController(tmp_path / "lib", model="tiny-random", device="cpu",
                                   config=CoreConfig(decode_workers=0))
    space = Generator(N, dups=0)
    controller.engine = controller.search_engine = SpaceEngine(space)
    ids = add_photos(controller.library, KEY, [{"path": f"/constructed/p{i}.jpg", "vector": space.original(i)}
                                               for i in range(N)])
    assert ids == list(range(1, N + 1))
    with controller.library.session() as s, s.begin():
        for i, pid in enumerate(ids):
            s.add(Caption(photo_id=pid, text=f"photo {i} by hand", source="user"))
    monkeypatch.setattr("clipdesk.tuning.run.PhotoViews", lambda spec: CodedViews())
    yield controller
    controller.shutdown()


def open_dialog(qtbot, window) -> TuneDialog:
    window.tune_action.trigger()  # Tools ▸ Tune for my library…
    dialog = window.tune_dialog
    assert isinstance(dialog, TuneDialog) and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.status is not None, timeout=10000)
    return dialog


def search_hits(qtbot, controller, photo_id: int) -> list[tuple[int, float]]:
    """Find-similar for one library photo, through the controller, as (id, score) pairs."""
    with qtbot.waitSignal(controller.search_finished, timeout=30000) as got:
        controller.search(SearchRequest([Term("photo", photo_id)], k=10))
    return [(h.photo_id, round(h.score, 5)) for h in got.args[1].hits]


def test_menu_opens_the_dialog_showing_no_tuning(qtbot, window):
    dialog = open_dialog(qtbot, window)
    assert dialog.status["active"] is False and dialog.status["last"] is None
    assert "No tuning" in dialog.now_label.text() and "tiny-random" in dialog.now_label.text()
    assert not dialog.revert_button.isEnabled() and dialog.tune_button.isEnabled()
    defaults = TuneOptions()
    assert (dialog.photos_spin.value(), dialog.views_spin.value(), dialog.epochs_spin.value()) == \
        (defaults.photos, defaults.views, defaults.epochs)
    assert dialog.table.isHidden() and dialog.figures() == {}
    assert window.tune_for_library() is dialog  # a second open raises the same dialog


def test_tune_runs_on_the_inference_lane_and_shows_before_and_after(qtbot, window, shared_data, monkeypatch):
    seen = {}

    def fake_tune(library, engine, options, progress, cancel):
        seen.update(lane=current_lane(), engine=engine, options=options, thread=threading.current_thread())
        for epoch in range(1, 4):
            progress(Progress("image head", epoch, 3))
            assert not cancel.checkpoint()
        report = TuneReport(engine.key, reasons=["near-duplicate mAP@100 on held-out photos rose: 0.250 -> 0.400"
                                                 " (needs a rise of more than 0.200)"])
        report.before, report.after = FIGURES, AFTER
        report.sizes = {"training_photos": 40, "views_per_photo": 2, "text_pairs": 80, "heldout_photos": 24,
                        "heldout_views": 72}
        return report

    monkeypatch.setattr("clipdesk.tuning.run.tune", fake_tune)
    dialog = open_dialog(qtbot, window)
    dialog.photos_spin.setValue(40)
    dialog.views_spin.setValue(2)
    dialog.epochs_spin.setValue(3)
    progress_seen = []
    window.controller.jobs.progress.connect(lambda job, st: progress_seen.append((job.kind, st.phase, st.done)))
    with qtbot.waitSignal(dialog.outcome_shown, timeout=30000,
                          check_params_cb=lambda text: "rolled back" in text) as shown:
        dialog.tune_button.click()
        assert window.controller.current_job.kind == "tune" and window.controller.current_job.lane is Lane.INFERENCE
        assert not dialog.tune_button.isEnabled() and not dialog.revert_button.isEnabled()
    assert seen["lane"] is Lane.INFERENCE and seen["thread"] is not threading.main_thread()
    assert seen["engine"] is window.controller.engine  # the base engine
    options = seen["options"]
    assert (options.photos, options.views, options.epochs) == (40, 2, 3)
    assert options.coco == shared_data / "coco_mini"  # text search also checked on the shared coco_mini
    assert ("tune", "image head", 3) in progress_seen
    assert "did not pass the check" in shown.args[0]
    figures = dialog.figures()
    assert figures["similar photos mAP@100 (24 queries)"] == ("0.250", "0.400")
    assert figures["text search, held-out captions R@5 (24 queries)"] == ("0.750", "0.750")
    assert len(figures) == 5  # n is not a measure
    assert "rose: 0.250 -> 0.400" in dialog.reasons_label.text()
    assert "Trained on 40 photos × 2 views" in dialog.reasons_label.text()
    assert dialog.tune_button.isEnabled()
    assert window.status_label.text().startswith("Tuning rolled back")
    qtbot.waitUntil(lambda: dialog.status is not None and dialog.progress_label.text() == "", timeout=5000)


def test_cancel_in_the_status_bar_stops_the_tune(qtbot, window, monkeypatch):
    started = threading.Event()
    stopped = []

    def fake_tune(library, engine, options, progress, cancel):
        for step in range(2000):  # at most 20 s
            progress(Progress("views", step, 2000))
            started.set()
            if cancel.checkpoint():
                stopped.append(step)
                report = TuneReport(engine.key, cancelled=True)
                report.reasons.append("stopped before any tuned vector was written: the library searches as before")
                return report
            threading.Event().wait(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr("clipdesk.tuning.run.tune", fake_tune)
    dialog = open_dialog(qtbot, window)
    dialog.tune_button.click()
    qtbot.waitUntil(lambda: started.is_set() and window.cancel_button.isVisible(), timeout=10000)
    qtbot.waitUntil(lambda: dialog.progress_label.text().startswith("Tuning: views"), timeout=10000)
    with qtbot.waitSignal(dialog.outcome_shown, timeout=20000) as shown:
        window.cancel_button.click()
    assert stopped and "Stopped before tuning finished" in shown.args[0]
    assert "searches as before" in dialog.reasons_label.text()
    assert dialog.table.isHidden() and dialog.tune_button.isEnabled()
    assert window.status_label.text().startswith("Stopped before tuning finished")


def test_too_few_photos_is_said_in_the_dialog(qtbot, window, no_coco, monkeypatch):
    """The real core on an empty library: a QueryError, shown in the dialog; the window opens no second box."""
    boxes = []
    monkeypatch.setattr("clipdesk.gui.main_window.show_error", lambda *a: boxes.append(a))
    monkeypatch.setattr("clipdesk.gui.tune_dialog.show_error", lambda *a: boxes.append(a))
    dialog = open_dialog(qtbot, window)
    with qtbot.waitSignal(window.controller.tune_failed, timeout=60000) as failed:
        dialog.tune_button.click()
    assert isinstance(failed.args[0], QueryError)
    assert "at least 20 photos" in dialog.outcome_label.text() and "b00020" in dialog.outcome_label.styleSheet()
    assert boxes == [] and dialog.tune_button.isEnabled()


def test_closing_the_dialog_mid_run_drops_its_results(qtbot, window, monkeypatch):
    gate = threading.Event()

    def fake_tune(library, engine, options, progress, cancel):
        gate.wait(20)
        progress(Progress("text head", 1, 1))
        report = TuneReport(engine.key)
        report.before, report.after = FIGURES, AFTER
        return report

    monkeypatch.setattr("clipdesk.tuning.run.tune", fake_tune)
    dialog = open_dialog(qtbot, window)
    dialog.tune_button.click()
    dialog.close()  # deleted on close
    qtbot.waitUntil(lambda: not shiboken6.isValid(dialog), timeout=5000)
    with qtbot.waitSignal(window.controller.tune_finished, timeout=20000):
        gate.set()
    qtbot.wait(50)  # a slot on the deleted dialog would raise here (pytest-qt fails the test on it)
    assert window.status_label.text().startswith("Tuning rolled back")
    again = open_dialog(qtbot, window)  # a new dialog, on the saved outcome (none: the fake wrote nothing)
    assert again is not dialog and again.tune_button.isEnabled()


def test_a_kept_tune_switches_searches_and_revert_switches_back(qtbot, constructed, monkeypatch):
    controller = constructed
    before = search_hits(qtbot, controller, 8)
    assert set(controller._searchers) == {KEY}  # noqa: SLF001 - which vectors the searches used
    dialog = TuneDialog(controller)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.status is not None, timeout=10000)
    dialog.photos_spin.setValue(64)
    dialog.views_spin.setValue(3)
    dialog.epochs_spin.setValue(6)
    with qtbot.waitSignal(controller.tune_finished, timeout=60000) as finished:
        dialog.tune_button.click()
    report = finished.args[0]
    assert report.kept, report.reasons
    assert report.tuned_key.startswith(KEY + "+tuned-") and report.written == N
    assert controller._searchers == {}  # noqa: SLF001 - cleared: the next search wraps the engine anew
    assert controller.engine.threads and threading.main_thread().name not in controller.engine.threads
    assert dialog.outcome_label.text().startswith("Tuning kept")
    near = dialog.figures()["similar photos mAP@100 (24 queries)"]
    assert float(near[1]) > float(near[0])
    qtbot.waitUntil(lambda: dialog.status["active"] and dialog.revert_button.isEnabled(), timeout=10000)
    assert f"{N:,} tuned vectors" in dialog.now_label.text()

    tuned = search_hits(qtbot, controller, 8)
    assert set(controller._searchers) == {report.tuned_key}  # noqa: SLF001
    assert tuned != before  # other scores and order: the tuned vectors are searched

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(controller.tuning_reverted, timeout=30000) as reverted:
        dialog.revert_button.click()
    assert reverted.args[0]["removed_vectors"] == N
    assert "Reverted: 120 tuned vectors removed" in dialog.outcome_label.text()
    qtbot.waitUntil(lambda: not dialog.status["active"], timeout=10000)
    assert "No tuning" in dialog.now_label.text() and not dialog.revert_button.isEnabled()
    assert search_hits(qtbot, controller, 8) == before  # exactly the base results again
    assert set(controller._searchers) == {KEY}  # noqa: SLF001


def test_revert_asks_first(qtbot, constructed, monkeypatch):
    """Cancel in the confirmation leaves everything as it was; no revert is asked for."""
    dialog = TuneDialog(constructed)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.status is not None, timeout=10000)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Cancel)
    monkeypatch.setattr(constructed, "revert_tuning", lambda *a: pytest.fail("reverted without a yes"))
    dialog.revert()
    assert asked and "exactly the results of before" in asked[0][2]


def test_indexing_a_tuned_library_gives_new_photos_tuned_vectors(qtbot, window, photos):
    """The index job stores base vectors, then ``manage.refresh`` derives the new photos' tuned ones."""
    controller = window.controller
    library, engine = controller.library, controller.engine
    with qtbot.waitSignal(controller.index_finished, timeout=120000):
        controller.add_roots([str(p) for p in sorted(photos.iterdir()) if p.name != "copy_small.jpg"])
    rng = np.random.default_rng(0)  # a tuning made by hand: a head that moves vectors visibly
    dim = engine.dim
    image = Head((rng.normal(size=(dim, dim)) / np.sqrt(dim)).astype(np.float32), np.zeros(dim, np.float32),
                 (0.5 * rng.normal(size=(dim, dim)) / np.sqrt(dim)).astype(np.float32))
    heads = Heads(image, Head.identity(dim, dim, 1), engine.key)
    save_heads(heads, state.heads_dir(library), {})
    state.set_state(library, state.ACTIVE_META, state.state_of(heads))
    assert state.write_tuned(library, heads) == (6, False)
    with qtbot.waitSignal(controller.index_finished, timeout=120000) as done:
        controller.add_roots([str(photos / "copy_small.jpg")])
    assert done.args[0].new == 1
    assert state.count_vectors(library, engine.key) == 7  # base vectors: kept for an exact revert
    assert state.count_vectors(library, heads.tuned_key) == 7  # and the new photo's tuned one
    base, tuned = load_vectors(library, engine.key), load_vectors(library, heads.tuned_key)
    assert list(base.ids) == list(tuned.ids)
    np.testing.assert_allclose(tuned.matrix, heads.image.apply(base.matrix), atol=2e-3)  # fp16 storage
    search_hits(qtbot, controller, int(base.ids[0]))
    assert set(controller._searchers) == {heads.tuned_key}  # noqa: SLF001 - the app searches the tuned vectors
