"""The detail panel: a large preview and everything the library knows about one photo.

The caller reads ``PhotoDetails`` (one small query, on the IO lane) and hands
it over; the photo's words (OCR) are read on the IO lane too, and the boxes of
those matching the current search are drawn on the preview. The preview is
decoded on the IO lane, because a 24-megapixel JPEG
takes far longer than a frame to decode. Each ``show_photo`` starts a new generation,
and a preview that arrives for an older one is dropped, so clicking quickly
through the grid never shows the wrong picture.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFormLayout, QLabel, QScrollArea, QStackedWidget, QVBoxLayout, QWidget

from clipdesk.gui.lanes import Lane, TaskManager, default_tasks
from clipdesk.gui.ocr_text import PhotoText, describe, load_photo_text, paint_boxes, preview_boxes
from clipdesk.imageio import read_preview
from clipdesk.store.queries import PhotoDetails

EMPTY_TEXT = "Select a photo to see its details"
MISSING_TEXT = "This photo is missing from disk: it was moved, renamed or deleted since the last scan."


def human_size(n: int) -> str:
    """Bytes as people read them: "0 bytes", "1.5 KB", "2.4 MB" (powers of 1000, like file managers)."""
    if n < 1000:
        return f"{n} byte" if n == 1 else f"{n} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def load_preview(path: str, side: int) -> QImage:
    """``path`` upright and scaled to fit ``side`` x ``side`` (never enlarged), as a QImage.

    Runs on the IO lane: the one image reader (``imageio.read_preview``: special files refused,
    the decompression-bomb limit, EXIF orientation, reduced-size JPEG decode), then a QImage,
    which is safe to hand across threads.
    """
    upright = read_preview(path, side)
    w, h = upright.size
    # copy(): the QImage must own its pixels once the bytes object is gone.
    return QImage(upright.tobytes("raw", "RGB"), w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _label_line(name: str, score: float | None, evidence: list[tuple[str, float]] | None) -> str:
    """"dog (0.31) — because: a wagging tail 0.33, floppy ears 0.30": the reason is shown, not just the verdict."""
    line = name if score is None else f"{name} ({score:.2f})"
    if evidence:
        line += " — because: " + ", ".join(f"{d} {v:.2f}" for d, v in evidence[:3])
    return line


class DetailPanel(QWidget):
    """Preview and metadata of the selected photo.

    Args:
        tasks: the task manager whose IO lane decodes previews (default: the app's); a newer
            photo cancels the previous decode if it has not started, so a burst of clicks
            decodes at most the one on screen and the one already running.
        library: a callable returning the open ``Library``, for the photo's words (OCR); None:
            the row is hidden.

    Signals:
        preview_loaded(int): the preview of this photo id is on screen.
        preview_failed(int): it could not be decoded (the reason is shown).
        feedback_requested(int, str, bool): the user confirmed or rejected a proposed label.
    """

    shown = Signal(int)  # this photo id's details are on screen (its preview may still be loading)
    preview_loaded = Signal(int)
    preview_failed = Signal(int)
    text_loaded = Signal(int)  # this photo id's words (OCR) are shown
    feedback_requested = Signal(int, str, bool)  # photo id, label, accepted

    def __init__(self, parent: QWidget | None = None, tasks: TaskManager | None = None, library=None) -> None:
        super().__init__(parent)
        self.tasks = tasks or default_tasks()
        self._library = library
        self._task = None
        self._text_task = None
        self.photo_text: PhotoText | None = None
        self._query: tuple[list[str], list[str]] = ([], [])
        self.highlighted: list = []  # the boxes drawn on the preview, in its device pixels
        self.details: PhotoDetails | None = None
        self._proposed: list[str] = []
        self._generation = 0
        self._image: QImage | None = None

        self.empty_label = QLabel(EMPTY_TEXT, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.preview_label = QLabel(alignment=Qt.AlignmentFlag.AlignCenter, minimumHeight=160, wordWrap=True)
        self.missing_label = QLabel(MISSING_TEXT, wordWrap=True, styleSheet="color: #b00020; font-weight: bold;")
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        fields = [("name", "Name"), ("path", "Path"), ("dimensions", "Dimensions"), ("format", "Format"),
                  ("size", "Size"), ("date", "Taken"), ("camera", "Camera"), ("gps", "GPS"),
                  ("labels", "Labels"), ("caption", "Caption"), ("words", "Words in photo"),
                  ("score", "Similarity")]
        for name, title in fields:
            label = QLabel(wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
            setattr(self, f"{name}_label", label)
            self.form.addRow(f"{title}:", label)
        # Proposed labels get "yes / no" links: the same answers as the review queue.
        self.feedback_label = QLabel(wordWrap=True, textFormat=Qt.TextFormat.RichText)
        self.feedback_label.linkActivated.connect(self._on_feedback_link)
        self.form.insertRow(self.form.getWidgetPosition(self.labels_label)[0] + 1, "Correct?", self.feedback_label)

        details = QWidget()
        box = QVBoxLayout(details)
        box.addWidget(self.preview_label)
        box.addWidget(self.missing_label)
        box.addLayout(self.form)
        box.addStretch(1)
        scroll = QScrollArea(widgetResizable=True, frameShape=QScrollArea.Shape.NoFrame)
        scroll.setWidget(details)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(scroll)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        self.show_photo(None)

    def show_photo(self, details: PhotoDetails | None, score: float | None = None) -> None:
        """Show ``details`` (None: the empty state) and start loading its preview."""
        self._generation += 1  # anything still decoding is now stale
        if self._task is not None:
            self._task.cancel()  # not started yet: it never starts
        if self._text_task is not None:
            self._text_task.cancel()
        self.details = details
        self._image = None
        self.photo_text = None
        self.highlighted = []
        self.preview_label.clear()
        if details is None:
            self.stack.setCurrentIndex(0)
            return
        self.stack.setCurrentIndex(1)
        frames = f" ({details.frames} frames)" if details.frames > 1 else ""
        gps = None
        if details.gps_lat is not None and details.gps_lon is not None:
            gps = f"{details.gps_lat:.5f}, {details.gps_lon:.5f}"
        labels = "\n".join(_label_line(name, s, details.evidence.get(name)) for name, s, _status in details.labels)
        self._set("name", details.path.replace("\\", "/").rsplit("/", 1)[-1])
        self._set("path", details.path)
        self._set("dimensions", f"{details.width} × {details.height}")
        self._set("format", f"{details.format}{frames}")
        self._set("size", human_size(details.size))
        self._set("date", details.taken_at.strftime("%Y-%m-%d %H:%M:%S") if details.taken_at else None)
        self._set("camera", details.camera)
        self._set("gps", gps)
        self._set("labels", labels or None)
        proposed = [name for name, _s, status in details.labels if status == "proposed"]
        self.feedback_label.setText(" · ".join(
            f"{html.escape(n)}: <a href='y:{i}'>yes</a> / <a href='n:{i}'>no</a>" for i, n in enumerate(proposed)))
        self._proposed = proposed
        self.form.setRowVisible(self.feedback_label, bool(proposed))
        self._set("caption", details.caption)
        self._set("score", None if score is None else f"{score:.3f}")
        self._load_text()
        self.missing_label.setVisible(details.missing)
        self.shown.emit(details.id)
        if details.missing:
            self.preview_label.setText("No preview: the file is not on disk.")
            return
        self.preview_label.setText("Loading preview…")
        generation, photo_id, path, side = self._generation, details.id, details.path, self._preview_side()
        self._task = self.tasks.run(Lane.IO, lambda: load_preview(path, side),
                                    lambda image: self._on_preview(generation, photo_id, image),
                                    lambda exc: self._on_preview_failed(generation, photo_id,
                                                                        str(exc) or type(exc).__name__))

    # -- words in the photo (OCR) ------------------------------------------------------------

    def set_query(self, words: list[str], phrases: list[str] = ()) -> None:
        """The current search's words and phrases: their boxes are highlighted on the preview."""
        self._query = (list(words), list(phrases))
        self._fit_preview()

    def refresh_text(self) -> None:
        """Read the shown photo's words again (after an OCR pass)."""
        if self.details is not None:
            self._load_text()

    def _load_text(self) -> None:
        if self._library is None:
            self._set("words", None)
            return
        self._set("words", "Reading…")
        generation, photo_id, library = self._generation, self.details.id, self._library
        self._text_task = self.tasks.run(Lane.IO, lambda: load_photo_text(library(), photo_id),
                                         lambda text: self._on_text(generation, text),
                                         lambda exc: self._on_text_failed(generation, exc))

    def _on_text(self, generation: int, text: PhotoText) -> None:
        if generation != self._generation:
            return
        self.photo_text = text
        self._set("words", describe(text))
        self._fit_preview()
        self.text_loaded.emit(text.photo_id)

    def _on_text_failed(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self._set("words", f"Unavailable: {exc}")

    def _on_feedback_link(self, link: str) -> None:
        verdict, index = link.split(":")
        if self.details is not None:
            self.feedback_requested.emit(self.details.id, self._proposed[int(index)], verdict == "y")

    def _set(self, name: str, text: str | None) -> None:
        """Fill one row; a row with nothing to say is hidden rather than showing "None"."""
        label: QLabel = getattr(self, f"{name}_label")
        label.setText(text or "")
        self.form.setRowVisible(label, bool(text))

    def _preview_side(self) -> int:
        # Device pixels, so the preview is sharp on HiDPI screens; capped to bound memory.
        width = max(self.width() - 32, 200)
        return min(int(width * self.devicePixelRatioF()), 2048)

    def _on_preview(self, generation: int, photo_id: int, image: QImage) -> None:
        if generation != self._generation:
            return  # a photo no longer shown
        self._image = image
        self._fit_preview()
        self.preview_loaded.emit(photo_id)

    def _on_preview_failed(self, generation: int, photo_id: int, reason: str) -> None:
        if generation != self._generation:
            return
        self.preview_label.setText(f"Preview unavailable: {reason}")
        self.preview_failed.emit(photo_id)

    def _fit_preview(self) -> None:
        if self._image is None:
            return
        pixmap = QPixmap.fromImage(self._image)
        pixmap.setDevicePixelRatio(self.devicePixelRatioF())
        side = max(self.width() - 32, 64)
        if pixmap.deviceIndependentSize().width() > side or pixmap.deviceIndependentSize().height() > side:
            ratio = self.devicePixelRatioF()
            pixmap = pixmap.scaled(int(side * ratio), int(side * ratio), Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
            pixmap.setDevicePixelRatio(ratio)
        lines = self.photo_text.lines if self.photo_text is not None else []
        self.highlighted = preview_boxes(lines, *self._query, self.details.width if self.details else 0,
                                         pixmap.width())
        self.preview_label.setPixmap(paint_boxes(pixmap, self.highlighted))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_preview()  # shrink with the panel; the next photo loads at the new size
