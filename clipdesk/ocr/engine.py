"""Reading the words in one photo: RapidOCR's PP-OCR models on ONNX Runtime, from its own wheel.

The models are the files the ``rapidocr`` wheel ships (``rapidocr/models``),
passed to it by explicit path. Left to its defaults, RapidOCR resolves each
model by name from ``default_models.yaml`` and calls ``DownloadFile.run`` with
a modelscope.cn URL: with this wheel the defaults name the shipped files, but
a missing or altered file (or another language or size in the config) is
downloaded, and every load hashes all 30 MB to check. With ``model_path`` set
for every stage that code is never reached (a test makes it raise), and the
rec model carries its character list in its ONNX metadata, so no dictionary
is fetched either. The direction classifier is off: it only turns text that
is upside down, which photos rarely hold, and costs a pass per line.

RapidOCR runs the detector first and recognition only on the boxes it finds,
so a photo without text costs one detector pass (measured in ``bench/ocr_cpu.py``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from clipdesk.imageio import decode_to_fit, decoding, open_image, read_bytes

# Long side the photo is decoded to before OCR. PP-OCR's detector resizes to
# ~736 px on the short side anyway; at 1600 px a 12 MP photo keeps ~1/2.5 of its
# resolution, enough for text ~15 px tall in the original (see docs/perf.md).
DEFAULT_SIDE = 1600
DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
# What the shipped PP-OCRv6 rec model reads (its ``default_models.yaml`` route):
# Chinese (simplified, traditional), Japanese, English and ~45 Latin-script languages.
LANGUAGES = "Chinese, Japanese, English and Latin-script European languages (French, German, Spanish, …)"

Box = list[list[float]]  # 4 points [x, y], clockwise from top-left, in the upright photo's pixels


@dataclass(frozen=True)
class OcrLine:
    text: str
    box: Box
    confidence: float


@dataclass
class OcrResult:
    lines: list[OcrLine]
    content_hash: str  # of the bytes that were read
    seconds_total: float = 0.0  # decode + detector + recognition
    size: tuple[int, int] = (0, 0)  # upright width, height of the photo
    timings: dict = field(default_factory=dict)


def model_dir() -> Path:
    import rapidocr

    return Path(rapidocr.__file__).parent / "models"


@lru_cache(maxsize=4)
def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def engine_key(side: int = DEFAULT_SIDE) -> str:
    """What the results depend on: the rapidocr version, each model file and its digest, the decode side."""
    from rapidocr._version import __version__

    models = "+".join(f"{name}@{_digest(model_dir() / name)}" for name in (DET_MODEL, REC_MODEL))
    return f"rapidocr-{__version__}:{models}:side{side}"


class OcrEngine:
    """Loads RapidOCR lazily (on the inference lane), from the wheel's model files only."""

    def __init__(self, side: int = DEFAULT_SIDE) -> None:
        self.side = side
        self._ocr = None
        self._lock = threading.Lock()

    @property
    def key(self) -> str:
        return engine_key(self.side)

    @property
    def ocr(self):
        with self._lock:
            if self._ocr is None:
                self._ocr = _load(self.side)
        return self._ocr

    def read_file(self, path: str | Path) -> OcrResult:
        """The lines in the photo at ``path``, boxes in its upright full-size pixels.

        Raises:
            ImageReadError: not a usable image.
            OSError: the file vanished or cannot be read.
        """
        start = time.perf_counter()
        _st, data = read_bytes(path)
        digest = hashlib.blake2b(data, digest_size=20).hexdigest()  # the indexer's content_hash
        with decoding():
            full = max(open_image(data).size)  # the long side is the same upright or not
        image = decode_to_fit(data, self.side)
        result = self.read_array(np.asarray(image), scale=full / max(image.size))
        result.content_hash = digest
        w, h = image.size
        result.size = (round(w * full / max(image.size)), round(h * full / max(image.size)))
        result.seconds_total = time.perf_counter() - start
        return result

    def read_array(self, rgb: np.ndarray, scale: float = 1.0) -> OcrResult:
        """OCR an upright RGB array; boxes multiplied by ``scale`` (back to the original's pixels)."""
        out = self.ocr(rgb[:, :, ::-1].copy())  # RapidOCR takes OpenCV's BGR
        elapse = list(getattr(out, "elapse_list", None) or [])
        lines = []
        if getattr(out, "txts", None):
            for text, box, score in zip(out.txts, out.boxes, out.scores, strict=True):
                points = [[round(float(x) * scale, 1), round(float(y) * scale, 1)] for x, y in np.asarray(box)]
                lines.append(OcrLine(str(text), points, round(float(score), 4)))
        # RapidOCR reports its stage timings only when it found text; bench/ocr_cpu.py times the
        # detector on its own for the photos without.
        det, rec = (float(elapse[0] or 0.0), float(elapse[2] or 0.0)) if len(elapse) > 2 else (0.0, 0.0)
        return OcrResult(lines, "", timings={"det": det, "rec": rec})


def _load(side: int):
    from rapidocr import RapidOCR

    root = model_dir()
    missing = [n for n in (DET_MODEL, REC_MODEL) if not (root / n).is_file()]
    if missing:
        from clipdesk.errors import ClipdeskError

        raise ClipdeskError(f"The rapidocr package lacks its model files ({', '.join(missing)} in {root}): "
                            "reinstall rapidocr.")
    return RapidOCR(params={
        "Global.use_cls": False,
        "Global.log_level": "error",  # not "the text detection result is empty" for every photo without text
        "Global.model_root_dir": str(root),
        "Det.model_path": str(root / DET_MODEL),
        "Rec.model_path": str(root / REC_MODEL),
        # Our decode already bounds the size; RapidOCR's own bound (2000) must not shrink it further.
        "Global.max_side_len": max(2000, side),
    })
