"""Choose the CLIP model and the device it runs on.

Lists the registry presets with whether their weights are on disk, takes
any ``--model`` string the CLI takes (checked with ``registry.resolve`` as
it is typed, on the IO lane: it imports open_clip and looks at files), builds
``ARCH:/path`` for a local checkpoint, and says what "auto" means on this
machine. Importing torch and open_clip takes seconds, so that probing runs on
the IO lane too and fills the dialog in when done.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clipdesk.engine.registry import CHECKPOINT_SUFFIXES, DEFAULT_PRESET, PRECISIONS, PRESETS, resolve
from clipdesk.errors import ModelSpecError
from clipdesk.gui.lanes import Lane, TaskManager, default_tasks
from clipdesk.paths import models_dir

DEVICES = ("auto", "cpu", "cuda", "mps")
DOWNLOAD_NOTE = "Weights download on first use (needs internet once) — or choose a local file."
# Architectures worth offering for a checkpoint: the CLIP-style image/text
# towers, not captioners (coca) or multilingual text variants.
_CLIP_ARCH = re.compile(r"^(ViT-|RN\d|EVA|MobileCLIP|PE-Core|convnext|ViTamin)")
_Qt = QDialogButtonBox.StandardButton
_NAME = Qt.ItemDataRole.UserRole


def _probe() -> dict:
    """Facts that need torch/open_clip: weight files, architectures, what "auto" picks, what cannot run here."""
    from clipdesk.engine.sources import loadable_here, weights_present

    present, unavailable = {}, {}
    for name in PRESETS:
        try:
            spec = resolve(name)
            why_not = loadable_here(spec)
            if why_not:
                unavailable[name] = why_not
            present[name] = not why_not and weights_present(spec)
        except Exception:  # noqa: BLE001 - a broken cache entry reads as "not downloaded"
            present[name] = False
    try:
        import open_clip
        import torch
    except ImportError:  # the packaged app: ONNX Runtime, and the architectures it has graphs for
        from clipdesk.engine.onnx_files import available_archs
        from clipdesk.engine.weights import device_report

        line, gpu = device_report()
        return {"present": present, "archs": available_archs(), "auto": f"auto → {'cuda' if gpu else 'cpu'} ({line})",
                "available": {"cuda": gpu, "mps": False}, "unavailable": unavailable, "precisions": ["auto", "fp32"]}

    from clipdesk.engine.clip import pick_device

    auto = pick_device("auto")
    if auto == "cuda":
        why = torch.cuda.get_device_name(0)
    elif auto == "mps":
        why = "Apple GPU"
    else:
        why = "no CUDA or MPS GPU found"
    mps = getattr(torch.backends, "mps", None)
    return {
        "present": present,
        "archs": sorted((m for m in open_clip.list_models() if _CLIP_ARCH.match(m)), key=str.lower),
        "auto": f"auto → {auto} ({why})",
        "available": {"cuda": torch.cuda.is_available(), "mps": bool(mps and mps.is_available())},
        "unavailable": unavailable,
        "precisions": list(PRECISIONS),
    }


def _facts_without(exc: BaseException) -> dict:
    """The dialog still works when probing fails, just without the facts."""
    return {"present": {}, "archs": [], "auto": f"auto → unknown ({exc})", "available": {}, "unavailable": {},
            "precisions": list(PRECISIONS)}


def validate(text: str) -> str | None:
    """Why ``text`` cannot be used as a model, or None (imports open_clip, looks at files: not the GUI thread)."""
    try:
        spec = resolve(text)
    except ModelSpecError as exc:
        return str(exc)
    if spec.checkpoint and not Path(spec.checkpoint).is_file():
        return f"Checkpoint file not found: {spec.checkpoint}"
    return None


class ModelDialog(QDialog):
    """Pick a preset, type a model spec, or choose a checkpoint file; pick a device.

    Args:
        current: the model spec in use ("" for the default preset).
        device: the device setting in use: auto | cpu | cuda | mps.
        precision: the precision setting in use: auto | fp32 | fp16 | bf16.
    """

    probed = Signal()  # the weights/device facts are filled in
    validated = Signal(str)  # the custom text whose check is now shown

    def __init__(self, parent: QWidget | None = None, current: str = "", device: str = "auto",
                 precision: str = "auto", tasks: TaskManager | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks or default_tasks()
        self._check_seq = 0
        self.setWindowTitle("Choose model")
        self.facts: dict | None = None
        self._error: str | None = None

        self.preset_list = QListWidget()
        for name, spec in PRESETS.items():
            item = QListWidgetItem(self._preset_text(name, "checking…"))
            item.setData(_NAME, name)
            item.setToolTip(spec.description)
            self.preset_list.addItem(item)
        self.preset_list.currentRowChanged.connect(self._on_preset_chosen)
        self.preset_list.itemClicked.connect(lambda _item: self._on_preset_chosen(self.preset_list.currentRow()))
        self.description_label = QLabel(wordWrap=True)

        self.custom_edit = QLineEdit(placeholderText="or any model: ARCH/TAG, hf-hub:ORG/REPO, ARCH:/path/to/file")
        self.custom_edit.textChanged.connect(self._on_custom_changed)
        self.error_label = QLabel(wordWrap=True, styleSheet="color: #b00020;")
        self.error_label.hide()
        self.arch_combo = QComboBox(editable=False, toolTip="The architecture the checkpoint was trained with")
        self.arch_combo.addItems(sorted({s.arch for s in PRESETS.values() if not s.random_init}, key=str.lower))
        self.arch_combo.setCurrentText(PRESETS[DEFAULT_PRESET].arch)
        self.checkpoint_button = QPushButton("Choose checkpoint file…")
        self.checkpoint_button.clicked.connect(self.choose_checkpoint)

        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.device_combo.setCurrentText(device if device in DEVICES else "auto")
        self.device_combo.currentTextChanged.connect(lambda _text: self._update_device_note())
        self.device_note = QLabel("auto → checking…", wordWrap=True)
        self.precision_combo = QComboBox(toolTip="Each precision computes its own embeddings: changing it re-embeds "
                                         "the library. auto: fp16 on an NVIDIA GPU, fp32 elsewhere.")
        self.precision_combo.addItems(PRECISIONS)
        self.precision_combo.setCurrentText(precision if precision in PRECISIONS else "auto")
        self.download_note = QLabel(DOWNLOAD_NOTE, wordWrap=True)

        self.buttons = QDialogButtonBox(_Qt.Ok | _Qt.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.ok_button = self.buttons.button(_Qt.Ok)

        checkpoint_row = QHBoxLayout()
        checkpoint_row.addWidget(self.arch_combo, 1)
        checkpoint_row.addWidget(self.checkpoint_button)
        form = QFormLayout()
        form.addRow("Custom:", self.custom_edit)
        form.addRow("", self.error_label)
        form.addRow("Checkpoint:", checkpoint_row)
        form.addRow("Device:", self.device_combo)
        form.addRow("", self.device_note)
        form.addRow("Precision:", self.precision_combo)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Presets:"))
        layout.addWidget(self.preset_list, 1)
        layout.addWidget(self.description_label)
        layout.addLayout(form)
        layout.addWidget(self.download_note)
        layout.addWidget(self.buttons)

        current = (current or DEFAULT_PRESET).strip()
        if current.lower() in PRESETS:
            self.preset_list.setCurrentRow(list(PRESETS).index(current.lower()))
        else:
            self.custom_edit.setText(current)

        self.tasks.run(Lane.IO, _probe, self._on_probed, lambda exc: self._on_probed(_facts_without(exc)))

    @staticmethod
    def _preset_text(name: str, status: str) -> str:
        test_only = " (TEST ONLY)" if PRESETS[name].random_init else ""
        return f"{name}{test_only} — {status}"

    # -- public API ----------------------------------------------------------------

    def selected_spec(self) -> str:
        """The custom text when given, else the highlighted preset's name."""
        custom = self.custom_edit.text().strip()
        if custom:
            return custom
        item = self.preset_list.currentItem()
        return item.data(_NAME) if item is not None else DEFAULT_PRESET

    def selected_device(self) -> str:
        return self.device_combo.currentText()

    def selected_precision(self) -> str:
        return self.precision_combo.currentText()

    def preset_status(self, name: str) -> str:
        """The status shown for preset ``name`` ("weights present", "not downloaded", "checking…")."""
        return self.preset_list.item(list(PRESETS).index(name)).text().rsplit(" — ", 1)[1]

    def choose_checkpoint(self) -> None:
        """Ask for a local weights file and use it over the chosen architecture."""
        patterns = " ".join(f"*{s}" for s in CHECKPOINT_SUFFIXES)
        path, _filter = QFileDialog.getOpenFileName(
            self, "Choose a CLIP checkpoint", str(models_dir()), f"CLIP checkpoints ({patterns});;All files (*)")
        if path:
            self.custom_edit.setText(f"{self.arch_combo.currentText()}:{path}")

    # -- reactions -------------------------------------------------------------------

    def _on_preset_chosen(self, row: int) -> None:
        if row < 0:
            return
        name = self.preset_list.item(row).data(_NAME)
        spec = PRESETS[name]
        self.custom_edit.blockSignals(True)  # a preset replaces whatever was typed
        self.custom_edit.clear()
        self.custom_edit.blockSignals(False)
        self._check_seq += 1
        self._show_error(None)
        text = spec.description
        present = (self.facts or {}).get("present", {}).get(name)
        if spec.url and present is False:
            text += (f"\nIts checkpoint downloads on first use from {spec.url} (the authors publish no checksum: "
                     f"clipdesk records its SHA-256 at the first download), or put the file in {models_dir()}.")
        self.description_label.setText(text)
        if not spec.random_init:
            self.arch_combo.setCurrentText(spec.arch)

    def _on_custom_changed(self, text: str) -> None:
        if not text.strip():
            self._check_seq += 1  # a check still running is for text that is gone
            self._show_error(None)
            return
        self.preset_list.blockSignals(True)  # typed text wins over the highlighted preset
        self.preset_list.setCurrentRow(-1)
        self.preset_list.blockSignals(False)
        self.description_label.clear()
        self._check_seq += 1
        seq, text = self._check_seq, text.strip()
        self.ok_button.setEnabled(False)  # until this text is checked

        def show(problem: str | None) -> None:
            if seq == self._check_seq:  # answers for text typed over since are dropped
                self._show_error(problem)
                self.validated.emit(text)

        self.tasks.run(Lane.IO, lambda: validate(text), show, lambda exc: show(str(exc)))

    def _show_error(self, message: str | None) -> None:
        self._error = message
        self.error_label.setText(message or "")
        self.error_label.setVisible(bool(message))
        self.ok_button.setEnabled(message is None)

    def _on_probed(self, facts: dict) -> None:
        self.facts = facts
        for row, name in enumerate(PRESETS):
            status = "weights present" if facts["present"].get(name) else "not downloaded"
            item = self.preset_list.item(row)
            item.setText(self._preset_text(name, status))
            # A preset this build cannot run is not offered (the packaged app has no PyTorch for .pth files).
            item.setHidden(name in facts.get("unavailable", {}))
        precision = self.precision_combo.currentText()
        self.precision_combo.clear()
        self.precision_combo.addItems(facts.get("precisions", PRECISIONS))
        self.precision_combo.setCurrentText(precision if precision in facts.get("precisions", PRECISIONS) else "auto")
        if facts["archs"]:
            arch = self.arch_combo.currentText()
            self.arch_combo.clear()
            self.arch_combo.addItems(facts["archs"])
            self.arch_combo.setCurrentText(arch)
        self._update_device_note()
        self._on_preset_chosen(self.preset_list.currentRow())  # the hint depends on presence
        self.probed.emit()

    def _update_device_note(self) -> None:
        if self.facts is None:
            return
        device = self.device_combo.currentText()
        note = self.facts["auto"]
        if device in ("cuda", "mps") and not self.facts["available"].get(device):
            note += f"\n{device} is not available on this machine; loading the model will fail."
        self.device_note.setText(note)
