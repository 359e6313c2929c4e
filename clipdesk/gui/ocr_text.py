"""Words in photos for the detail panel: loading a photo's OCR text, and highlighting matches on the preview.

``load_photo_text`` runs on the IO lane (a database read); the rest runs on
the GUI thread with what it returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap, QPolygonF

from clipdesk.captions.store import query_words
from clipdesk.ocr.engine import OcrLine
from clipdesk.ocr.store import matched_boxes, photo_status, photo_text

NOT_RUN_TEXT = "Not read yet: Tools ▸ Read words in photos (OCR)."
NO_TEXT = "No text found in this photo."
_FILL = QColor(255, 214, 0, 90)
_EDGE = QColor(255, 140, 0)


@dataclass
class PhotoText:
    photo_id: int
    status: str | None  # text | none | failed, or None: OCR has not run on it
    reason: str | None = None
    lines: list[OcrLine] = field(default_factory=list)


def load_photo_text(library, photo_id: int) -> PhotoText:
    """The photo's OCR state and lines (IO lane)."""
    state = photo_status(library, photo_id)
    if state is None:
        return PhotoText(photo_id, None)
    return PhotoText(photo_id, state[0], state[1], photo_text(library, photo_id) if state[0] == "text" else [])


def describe(text: PhotoText) -> str:
    """What the "Words" row says: the lines with their confidence, or why there are none."""
    if text.status is None:
        return NOT_RUN_TEXT
    if text.status == "failed":
        return f"Could not be read: {text.reason}"
    if not text.lines:
        return NO_TEXT
    return "\n".join(f"{ln.text}  ({ln.confidence:.2f})" for ln in text.lines)


def highlight_query(terms) -> tuple[list[str], list[str]]:
    """The words and quoted phrases of a search's positive text terms: what to highlight."""
    texts = [str(t.value) for t in terms if t.kind == "text" and not t.negative]
    phrases = [p for t in terms if t.kind == "text" and not t.negative for p in t.phrases]
    return query_words(" ".join(texts)), phrases


def preview_boxes(lines: Sequence[OcrLine], words: Sequence[str], phrases: Sequence[str],
                  photo_width: int, preview_width: int) -> list[list[tuple[float, float]]]:
    """The matched boxes in the preview's pixels (the preview is the photo, upright, scaled)."""
    if not lines or not (words or phrases) or photo_width <= 0:
        return []
    scale = preview_width / photo_width
    return [[(x * scale, y * scale) for x, y in box] for box in matched_boxes(lines, words, phrases)]


def paint_boxes(pixmap: QPixmap, boxes: Sequence[Sequence[tuple[float, float]]]) -> QPixmap:
    """A copy of ``pixmap`` with ``boxes`` (in its device pixels) drawn over it."""
    if not boxes:
        return pixmap
    out = pixmap.copy()
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    ratio = out.devicePixelRatio() or 1.0  # QPainter works in device-independent pixels
    painter.setPen(QPen(_EDGE, 2))
    painter.setBrush(_FILL)
    for box in boxes:
        painter.drawPolygon(QPolygonF([QPointF(x / ratio, y / ratio) for x, y in box]))
    painter.end()
    return out
