"""First run: get the default model's weights, or use a checkpoint file the user already has.

Shown once at launch when the model to use has no weights on disk and no
choice was made before. Downloading runs on the IO lane with progress and
Cancel, and the file is checked against its SHA-256 (``engine/weights.py``);
a chosen file is checked for CLIP weights before it is accepted. The choice
goes into the settings, so the next launch just loads the model. The dialog
also says whether a GPU will be used and, if not, why.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clipdesk.engine.clip import file_spec_text
from clipdesk.engine.registry import ModelSpec
from clipdesk.engine.sources import weights_present
from clipdesk.engine.weights import check_checkpoint, device_report, download_weights
from clipdesk.errors import ModelNotAvailable
from clipdesk.gui.lanes import Lane, TaskManager, default_tasks
from clipdesk.jobs import CancelToken


class _Progress(QObject):
    """Made on the GUI thread: a download reports here from the IO lane, queued."""

    changed = Signal(int, int)


class FirstRunDialog(QDialog):
    """Download the weights of ``spec`` or choose a local checkpoint for its architecture.

    Emits ``model_chosen`` with the ``--model`` text to load, then closes.
    """

    model_chosen = Signal(str)

    def __init__(self, settings, spec: ModelSpec, parent: QWidget | None = None,
                 downloader=download_weights, tasks: TaskManager | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to clipdesk")
        self.settings, self.spec, self.downloader = settings, spec, downloader
        self.tasks = tasks or default_tasks()
        self._cancel: CancelToken | None = None
        self._progress = _Progress(self)
        self._progress.changed.connect(self._on_progress)
        self.setMinimumWidth(560)
        intro = QLabel(wordWrap=True, text=(
            f"clipdesk needs the weights of its model, {spec.name} (open_clip {spec.arch}), once.\n\n"
            "Download them (about 600 MB; the file is checked before use), or choose a checkpoint file you "
            f"already have for {spec.arch} (.safetensors, or a weights-only PyTorch file)."))
        self.device_label = QLabel("Checking for a GPU…", wordWrap=True)
        self.progress = QProgressBar(visible=False)
        self.status_label = QLabel(wordWrap=True)
        self.download_button = QPushButton("Download")
        self.file_button = QPushButton("Choose a file…")
        self.later_button = QPushButton("Later")
        self.download_button.clicked.connect(self.start_download)
        self.file_button.clicked.connect(lambda: self.choose_file())
        self.later_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        for button in (self.download_button, self.file_button, self.later_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        for widget in (intro, self.device_label, self.progress, self.status_label):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        # torch's CUDA probe takes seconds: off the GUI thread.
        self.tasks.run(Lane.IO, device_report, lambda report: self.device_label.setText(report[0]),
                       lambda exc: self.device_label.setText(f"GPU: unknown ({exc})"))

    def start_download(self) -> None:
        self._busy(True)
        self._cancel = CancelToken()
        cancel, spec, downloader = self._cancel, self.spec, self.downloader
        notes: list[str] = []
        self._notes = notes

        report = self._progress.changed.emit
        # on_note: what the download was checked against (MCIP: a hash recorded now), for the status line.
        self.tasks.run(Lane.IO, lambda: downloader(spec, report, cancel, on_note=notes.append),
                       self._downloaded, self._failed)
        self.status_label.setText("Downloading…")

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, 1000 if total else 0)
        if total:
            self.progress.setValue(int(1000 * done / total))
        self.status_label.setText(f"Downloading: {done / 1e6:,.0f} of {total / 1e6:,.0f} MB" if total
                                  else f"Downloading: {done / 1e6:,.0f} MB")

    def _downloaded(self, path) -> None:
        notes = " ".join(getattr(self, "_notes", []))
        self.status_label.setText(f"Downloaded and verified: {Path(path).name}" + (f". {notes}" if notes else ""))
        self._finish(self.spec.name, remember="")  # "" = the default preset, now on disk

    def _failed(self, exc: BaseException) -> None:
        self._busy(False)
        self.status_label.setText(str(exc))
        if isinstance(exc, ModelNotAvailable):  # offline, or nothing this build can read: the file is the way on
            self.file_button.setDefault(True)
            self.file_button.setFocus()

    def choose_file(self, path: str | None = None) -> bool:
        """Use a local checkpoint (from a file dialog when ``path`` is None); False if it is refused."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a checkpoint file", str(Path.home()),
                                                  "Model weights (*.safetensors *.pt *.pth *.bin)")
            if not path:
                return False
        problem = check_checkpoint(Path(path))
        if problem:
            self.status_label.setText(problem)
            return False
        text = file_spec_text(self.spec, str(Path(path).resolve()))
        self._finish(text, remember=text)
        return True

    def _finish(self, model_text: str, remember: str) -> None:
        self.settings.model_spec = remember
        self.settings.first_run_done = True
        self.settings.sync()
        self.model_chosen.emit(model_text)
        self.accept()

    def _busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.download_button.setEnabled(not busy)
        self.file_button.setEnabled(not busy)
        self.later_button.setText("Cancel" if busy else "Later")

    def reject(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
        super().reject()


def maybe_first_run(window, settings, controller, then=lambda: None) -> bool:
    """Check (off the GUI thread) whether the model's weights are missing; if so open the dialog.

    Returns True when it took over loading the model: at once when the weights
    are there, or when the dialog is answered ("Later" loads it too, and the
    window's banner then says what is missing). ``then`` runs after that
    (indexing waits for the model to be chosen).
    """
    if settings.first_run_done:
        return False
    spec = controller.engine.spec

    def load(text: str | None = None) -> None:
        if text is None or text == spec.name:
            controller.load_model()
        else:
            controller.switch_model(text, settings.model_device)
        then()

    def checked(present: bool) -> None:
        if present:
            load()
            return
        dialog = FirstRunDialog(settings, spec, parent=window, tasks=controller.tasks)
        dialog.model_chosen.connect(load)
        dialog.rejected.connect(load)
        window.first_run_dialog = dialog
        dialog.open()

    # weights_present may import open_clip (seconds) and reads the models cache: the IO lane.
    controller.tasks.run(Lane.IO, lambda: weights_present(spec), checked, lambda _exc: load())
    return True
