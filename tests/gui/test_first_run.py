"""First-run dialog: a local checkpoint or a (fake) verified download; the choice is remembered."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clipdesk.engine.registry import resolve
from clipdesk.gui.first_run import FirstRunDialog, maybe_first_run
from clipdesk.gui.lanes import default_tasks
from clipdesk.gui.settings import Settings


@pytest.fixture
def checkpoint(tmp_path, tiny_engine):
    from safetensors.torch import save_file

    path = tmp_path / "my-clip.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_engine.model.state_dict().items()}, str(path))
    return path


def test_local_checkpoint_is_checked_and_remembered(qtbot, checkpoint, tmp_path):
    settings = Settings()
    dialog = FirstRunDialog(settings, resolve("vit-b-32"))
    qtbot.addWidget(dialog)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    assert not dialog.choose_file(str(junk))
    assert "Cannot read" in dialog.status_label.text() and not settings.first_run_done
    with qtbot.waitSignal(dialog.model_chosen) as chosen:
        assert dialog.choose_file(str(checkpoint))
    # With the preset's tag: a file of its weights is preprocessed as that tag's weights are.
    assert chosen.args == [f"ViT-B-32/datacomp_xl_s13b_b90k:{checkpoint}"]
    assert Settings().model_spec == f"ViT-B-32/datacomp_xl_s13b_b90k:{checkpoint}" and Settings().first_run_done
    qtbot.waitUntil(lambda: dialog.device_label.text() != "Checking for a GPU…", timeout=30000)
    assert "CPU" in dialog.device_label.text() or "GPU used" in dialog.device_label.text()


def test_download_reports_progress_then_loads_the_default(qtbot):
    calls = []

    def downloader(spec, progress, cancel, on_note):
        for done in (100, 600):
            progress(done, 600)
        calls.append(spec.name)
        on_note("Recorded its SHA-256 at this first download.")
        return "/cache/open_clip_model.safetensors"

    settings = Settings()
    settings.model_spec = "something-old"
    dialog = FirstRunDialog(settings, resolve("vit-b-32"), downloader=downloader)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.model_chosen, timeout=10000) as chosen:
        dialog.start_download()
    assert chosen.args == ["vit-b-32"] and calls == ["vit-b-32"]
    assert settings.model_spec == "" and settings.first_run_done
    assert dialog.status_label.text().endswith("Recorded its SHA-256 at this first download.")


def test_a_failed_download_says_why_and_allows_another_try(qtbot):
    from clipdesk.engine.weights import ChecksumMismatch

    def downloader(spec, progress, cancel, on_note):
        raise ChecksumMismatch("The downloaded file x is damaged")

    dialog = FirstRunDialog(Settings(), resolve("vit-b-32"), downloader=downloader)
    qtbot.addWidget(dialog)
    dialog.start_download()
    qtbot.waitUntil(lambda: "damaged" in dialog.status_label.text(), timeout=10000)
    assert dialog.download_button.isEnabled() and not Settings().first_run_done


@pytest.mark.parametrize(("model", "opens"), [("vit-b-32", True), ("tiny-random", False)])
def test_shown_only_when_weights_are_missing(qtbot, model, opens):
    from PySide6.QtWidgets import QWidget

    window, loads = QWidget(), []
    qtbot.addWidget(window)
    controller = SimpleNamespace(engine=SimpleNamespace(spec=resolve(model)), tasks=default_tasks(),
                                 load_model=lambda: loads.append(1))
    after = []
    assert maybe_first_run(window, Settings(), controller, then=lambda: after.append(len(loads)))
    if opens:
        qtbot.waitUntil(lambda: hasattr(window, "first_run_dialog"), timeout=30000)
        assert window.first_run_dialog.isVisible() and not loads
        window.first_run_dialog.reject()  # "Later" still loads: the banner says what is missing
    qtbot.waitUntil(lambda: loads == [1], timeout=30000)
    assert after == [1]  # indexing starts once the model is decided, after its load was queued
    settings = Settings()
    settings.first_run_done = True
    assert not maybe_first_run(window, settings, controller)


def test_model_dialog_facts_without_torch(tmp_path, monkeypatch):
    """The packaged app has no torch or open_clip: the model dialog's facts come from the ONNX graphs."""
    import json
    import sys

    from clipdesk.gui.model_dialog import _probe

    graph = tmp_path / "onnx" / "arch-ViT-B-32-0123abcd"
    graph.mkdir(parents=True)
    tag = {"hf_hub": "laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K/", "mean": [0.48145466, 0.4578275, 0.40821073],
           "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic", "resize_mode": "shortest"}
    (graph / "meta.json").write_text(json.dumps({"arch": "ViT-B-32", "serves": ["tag:datacomp_xl_s13b_b90k"],
                                                 "tags": {"datacomp_xl_s13b_b90k": tag}}))
    monkeypatch.setenv("CLIPDESK_ONNX_PATH", str(tmp_path / "onnx"))
    monkeypatch.setenv("CLIPDESK_ENGINE", "onnx")
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import fails, as in the bundle
    monkeypatch.setitem(sys.modules, "torch", None)
    facts = _probe()
    assert facts["archs"] == ["ViT-B-32"]
    assert facts["auto"].startswith("auto → cpu (Runs on the CPU: this ONNX Runtime build has no CUDA")
    assert not facts["present"]["vit-b-32"] and "vit-b-32" not in facts["unavailable"]
    # What the bundle cannot run is not offered: no graph here, or PyTorch-only weights (MCIP's .pth files).
    assert {"mcip-vit-l-14-336", "mcip-so400m", "vit-l-14", "tiny-random"} <= set(facts["unavailable"])
    assert facts["precisions"] == ["auto", "fp32"]


def test_offline_download_says_so_and_points_at_the_file(qtbot, monkeypatch):
    from clipdesk.engine import weights

    monkeypatch.setattr(weights, "_REACHABLE", False)
    dialog = FirstRunDialog(Settings(), resolve("vit-b-32"))  # the real downloader, with the hub unreachable
    qtbot.addWidget(dialog)
    dialog.start_download()
    qtbot.waitUntil(lambda: "can't be reached" in dialog.status_label.text(), timeout=10000)
    text = dialog.status_label.text()
    assert "Errno" not in text and "checkpoint file" in text
    assert dialog.file_button.isDefault() and dialog.file_button.isEnabled()
