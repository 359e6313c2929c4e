"""ModelDialog: presets with weight status, inline validation, checkpoint paths, device note."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QFileDialog

from clipdesk.engine.registry import DEFAULT_PRESET, PRESETS
from clipdesk.gui.model_dialog import DOWNLOAD_NOTE, ModelDialog


@pytest.fixture
def dialog(qtbot):
    widget = ModelDialog()
    qtbot.addWidget(widget)
    # torch + open_clip import on the pool: seconds on a small machine.
    qtbot.waitUntil(lambda: widget.facts is not None, timeout=60_000)
    return widget


def test_lists_presets_with_weight_status(dialog):
    assert dialog.preset_list.count() == len(PRESETS)
    # The test home has an empty model cache: only the random test model is "present".
    assert dialog.preset_status("tiny-random") == "weights present"
    assert dialog.preset_status("vit-b-32") == "not downloaded"
    texts = [dialog.preset_list.item(i).text() for i in range(dialog.preset_list.count())]
    assert any(t.startswith("tiny-random (TEST ONLY)") for t in texts)
    assert not any("TEST ONLY" in t for t in texts if t.startswith("vit-"))
    assert dialog.download_note.text() == DOWNLOAD_NOTE


def test_default_selection_and_preset_choice(dialog):
    assert dialog.selected_spec() == DEFAULT_PRESET
    dialog.preset_list.setCurrentRow(list(PRESETS).index("vit-l-14"))
    assert dialog.selected_spec() == "vit-l-14"
    assert dialog.description_label.text() == PRESETS["vit-l-14"].description
    assert dialog.arch_combo.currentText() == "ViT-L-14"


def test_missing_checkpoint_preset_says_where_to_get_it(dialog):
    dialog.preset_list.setCurrentRow(list(PRESETS).index("mcip-so400m"))
    assert "visual-computing.com" in dialog.description_label.text()


def _type(dialog, qtbot, text: str) -> None:
    """Type ``text`` and wait for its check (it runs on the IO lane, not the GUI thread)."""
    with qtbot.waitSignal(dialog.validated, timeout=30_000, check_params_cb=lambda t: t == text.strip()):
        dialog.custom_edit.setText(text)


def test_bad_custom_name_is_shown_inline(dialog, qtbot):
    _type(dialog, qtbot, "not-a-model")
    assert not dialog.error_label.isHidden()
    assert "Unknown model" in dialog.error_label.text()
    assert not dialog.ok_button.isEnabled()
    _type(dialog, qtbot, "RN50")  # "ViT-B-32" alone would be the preset vit-b-32
    assert "needs weights" in dialog.error_label.text()
    _type(dialog, qtbot, "ViT-B-32/no_such_tag")
    assert "no weights tagged" in dialog.error_label.text()
    _type(dialog, qtbot, "ViT-B-32/laion2b_s34b_b79k")
    assert dialog.error_label.isHidden()
    assert dialog.ok_button.isEnabled()
    assert dialog.selected_spec() == "ViT-B-32/laion2b_s34b_b79k"
    assert dialog.preset_list.currentRow() == -1


def test_choosing_a_preset_replaces_custom_text(dialog):
    dialog.custom_edit.setText("not-a-model")
    dialog.preset_list.setCurrentRow(0)
    assert dialog.custom_edit.text() == ""
    assert dialog.ok_button.isEnabled()
    assert dialog.selected_spec() == list(PRESETS)[0]


def test_checkpoint_file_builds_arch_path(dialog, monkeypatch, tmp_path):
    weights = tmp_path / "my finetune.safetensors"
    weights.write_bytes(b"\0")
    asked = []

    def fake_open(*args, **kwargs):
        asked.append(args)
        return str(weights), "CLIP checkpoints"

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake_open))
    dialog.arch_combo.setCurrentText("ViT-B-16")
    dialog.checkpoint_button.click()
    assert asked and "*.safetensors" in asked[0][3]
    assert dialog.selected_spec() == f"ViT-B-16:{weights}"
    assert dialog.error_label.isHidden()


def test_checkpoint_cancel_changes_nothing(dialog, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: ("", "")))
    dialog.checkpoint_button.click()
    assert dialog.selected_spec() == DEFAULT_PRESET


def test_missing_checkpoint_file_is_an_error(dialog, tmp_path, qtbot):
    _type(dialog, qtbot, f"ViT-B-32:{tmp_path / 'gone.pt'}")
    assert "not found" in dialog.error_label.text()


def test_arch_combo_offers_clip_architectures(dialog):
    archs = [dialog.arch_combo.itemText(i) for i in range(dialog.arch_combo.count())]
    assert "ViT-B-32" in archs and "RN50" in archs
    assert not any(a.startswith(("coca_", "mt5-", "xlm-")) for a in archs)


def test_device_note(dialog):
    import torch

    assert dialog.selected_device() == "auto"
    if torch.cuda.is_available():
        assert dialog.device_note.text().startswith("auto → cuda (")
    else:
        assert dialog.device_note.text().startswith("auto → ")  # cpu, or mps on a Mac
        dialog.device_combo.setCurrentText("cuda")
        assert dialog.selected_device() == "cuda"
        assert "cuda is not available on this machine" in dialog.device_note.text()


def test_auto_device_explained_without_gpu(qtbot, monkeypatch):
    import torch

    import clipdesk.engine.clip

    monkeypatch.setattr(clipdesk.engine.clip, "pick_device", lambda requested="auto": "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    widget = ModelDialog()
    qtbot.addWidget(widget)
    with qtbot.waitSignal(widget.probed, timeout=60_000):
        pass  # the probe's result is queued until the event loop runs
    assert widget.device_note.text() == "auto → cpu (no CUDA or MPS GPU found)"


def test_opens_on_the_current_settings(qtbot):
    widget = ModelDialog(current="ViT-B-32/laion2b_s34b_b79k", device="cpu")
    qtbot.addWidget(widget)
    assert widget.selected_spec() == "ViT-B-32/laion2b_s34b_b79k"
    assert widget.selected_device() == "cpu"
    qtbot.waitUntil(lambda: widget.facts is not None, timeout=60_000)
    other = ModelDialog(current="vit-b-16", device="tpu")
    qtbot.addWidget(other)
    assert other.selected_spec() == "vit-b-16"
    assert other.selected_device() == "auto"
    qtbot.waitUntil(lambda: other.facts is not None, timeout=60_000)


def test_precision_setting(qtbot):
    widget = ModelDialog(current="tiny-random", device="cpu", precision="bf16")
    qtbot.addWidget(widget)
    assert widget.selected_precision() == "bf16"
    qtbot.waitUntil(lambda: widget.facts is not None, timeout=60_000)
    options = [widget.precision_combo.itemText(i) for i in range(widget.precision_combo.count())]
    assert options == ["auto", "fp32", "fp16", "bf16"] and widget.selected_precision() == "bf16"
    assert "re-embeds" in widget.precision_combo.toolTip()
