"""Tools ▸ Read words in photos (OCR): the OCR pass as a job in the app's queue.

It runs on the inference lane (one model at a time, like indexing and
captions), so ONNX Runtime never competes with CLIP for the cores; its batches
reach the database through the writer lane (``Library.write``). Cancelled or
quit midway, the next run continues where it stopped.
"""

from __future__ import annotations

import threading

from clipdesk.gui.lanes import Job, Lane
from clipdesk.ocr.engine import OcrEngine

KIND = "ocr"
TITLE = "Reading words in photos"
_engine: OcrEngine | None = None
_lock = threading.Lock()


def ocr_engine() -> OcrEngine:
    """The one OCR engine of the process; its models load on first use, on the inference lane."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = OcrEngine()
        return _engine


def ocr_job(library, on_done=None) -> Job:
    from clipdesk.ocr.run import ocr_library

    def job(progress, cancel):
        return ocr_library(library, ocr_engine(), progress=progress, cancel=cancel)

    return Job(KIND, TITLE, job, Lane.INFERENCE, on_done=on_done)


def summary(report) -> str:
    """The status bar's line when the pass ends."""
    verb = "Stopped reading words" if report.cancelled else "Read words"
    text = (f"{verb}: {report.read:,} of {report.todo:,} photos, {report.with_text:,} with text, "
            f"{report.failed:,} could not be read.")
    return text + (" Run it again to continue." if report.cancelled else "")
