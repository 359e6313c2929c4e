"""``tune``: train both heads, judge them on held-out photos, keep them only if they pass.

Stage 1 encodes augmented views of a sample of photos and trains the image
head (ArcFace) on them, on near-duplicate clusters of the stored vectors,
and keeps the stored photos' similarities (``train``); a slice of the
sample is kept out to pick the best epoch. Stage 2 trains the text head on
the pseudo-captions of the photos not held out. The guard then compares
base and tuned on the held-out photos (``guard``); heads that pass are
saved and their vectors written (``manage.finish``).

Until ``finish`` switches the active identity the library searches exactly
as before: a stop (Ctrl-C, Cancel) before the writing phase loses only the
training, which the next run redoes; a stop while writing keeps the
checked heads, and the next run continues writing them.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from clipdesk.errors import QueryError, TrainingUnavailable
from clipdesk.eval.data import load_coco
from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress
from clipdesk.store.db import Library
from clipdesk.store.models import Photo, utcnow
from clipdesk.store.vectors import VectorSet, load_vectors
from clipdesk.tuning import guard, pseudo, state
from clipdesk.tuning.active import unwrap
from clipdesk.tuning.collect import Views, backfill_base, encode_batched, encode_views, image_classes, text_relevance
from clipdesk.tuning.heads import Head, Heads, save_heads
from clipdesk.tuning.manage import finish, outcome, pending_heads
from clipdesk.tuning.train import TextSettings, select_image_head, train_text_head
from clipdesk.tuning.views import PhotoViews, ViewSource

MIN_PHOTOS = 20  # fewer, and neither training nor the guard has anything to stand on
MIN_HELDOUT = 8
VALIDATION = 0.15  # of the training photos: their views choose the image head's epoch


@dataclass
class TuneOptions:
    """How much to encode and train; the defaults take a few minutes on 2 cores with ViT-B/32."""

    photos: int = 2000  # at most this many training photos have their views encoded...
    budget_s: float | None = 240.0  # ...and no more once encoding views has taken this long (None: no limit)
    min_photos: int = 200  # ...but at least this many (when the library has them), however long it takes
    views: int = 4  # views per training photo
    heldout: int = 64  # photos kept out of training, to judge with
    heldout_views: int = 3  # held-out-kind views per held-out photo
    epochs: int = 30
    dup_threshold: float = 0.95  # cosine at which mutual nearest neighbours count as near-duplicates
    distractors: int = 2000
    text_pairs: int = 4000
    seed: int = 0
    coco: Path | None = None  # a coco_mini folder: also check text search there
    min_gain: float = 0.01
    max_drop: float = 0.01


@dataclass
class TuneReport:
    base_key: str
    kept: bool = False
    cancelled: bool = False
    resumed: bool = False
    tuned_key: str | None = None
    reasons: list[str] = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    image_settings: dict = field(default_factory=dict)
    written: int = 0


@dataclass
class _Job:
    """One run's inputs, shared by its stages."""

    library: Library
    engine: object
    options: TuneOptions
    vectors: VectorSet
    split: pseudo.Split
    progress: ProgressCallback
    cancel: CancelToken
    chosen: dict = field(default_factory=dict)  # the image loss settings validation picked


def tune(library: Library, engine, options: TuneOptions | None = None, views: ViewSource | None = None,
         progress: ProgressCallback = no_progress, cancel: CancelToken | None = None) -> TuneReport:
    """Tune ``engine``'s space for ``library``; see the module docstring. ``views``: default real photos."""
    options, cancel = options or TuneOptions(), cancel or CancelToken()
    if importlib.util.find_spec("torch") is None:
        raise TrainingUnavailable("Tuning trains its heads with PyTorch, which this installation lacks (the packaged "
                                  "app runs models with ONNX Runtime). Tune from a source install "
                                  "('clipdesk tune'); the packaged app then searches the tuned library as it is.")
    base = unwrap(engine)
    report = TuneReport(base.key)
    heads = pending_heads(library, base.key)
    if heads is not None:
        report.resumed = True
        return finish(library, heads, report, progress, cancel)
    clock = _Clock(report.seconds)
    if backfill_base(library, base, progress, cancel) is None:
        return _stopped(report)
    vectors = load_vectors(library, base.key)
    n = len(vectors)
    if n < MIN_PHOTOS:
        raise QueryError(f"Tuning needs at least {MIN_PHOTOS} photos indexed with this model; "
                         f"{library.root} has {n}. Index more photos first.")
    held = min(options.heldout, max(MIN_HELDOUT, n // 5))
    job = _Job(library, base, options, vectors, pseudo.split_rows(n, held, min(options.photos, n - held), options.seed),
               progress, cancel)
    source = views or PhotoViews(base.input_spec())
    paths = _paths(library)

    def photos(rows):
        return [(int(vectors.ids[r]), paths[int(vectors.ids[r])]) for r in rows]

    train_views = encode_views(base, source, photos(job.split.train), source.train_kinds, options.views,
                               options.seed, "views", progress, cancel, options.budget_s, options.min_photos)
    held_views = train_views and encode_views(base, source, photos(job.split.heldout), source.heldout_kinds,
                                              options.heldout_views, options.seed + 1, "held-out views", progress,
                                              cancel)
    clock("encoding views")
    if held_views is None:
        return _stopped(report)
    image_head, sizes = _image_stage(job, train_views)
    report.image_settings = job.chosen
    clock("image head")
    if image_head is None:
        return _stopped(report)
    held_rows = job.split.heldout[held_views.readable(len(job.split.heldout))]
    found = _text_stage(job, image_head, held_rows)
    clock("text head")
    if found is None:
        return _stopped(report)
    heads, data, text_sizes = found
    held_views = held_views.subset(held_views.readable(len(job.split.heldout)))
    data.views, data.view_owner = held_views.vectors, held_views.owner
    if options.coco is not None and not _add_coco(data, base, Path(options.coco), progress, cancel):
        return _stopped(report)
    report.before, report.after = guard.figures(data), guard.figures(data, heads)
    report.kept, report.reasons = guard.judge(report.before, report.after, options.min_gain, options.max_drop)
    report.sizes = {"library_photos": n, **sizes, **text_sizes, **data.sizes(),
                    "unreadable": len(train_views.unreadable) + len(held_views.unreadable),
                    "not_viewed_for_time": len(train_views.unviewed)}
    clock("guard")
    if not report.kept:
        state.set_state(library, state.LAST_META, outcome(report, "rolled back"))
        return report
    save_heads(heads, state.heads_dir(library), {"created": utcnow(), "sizes": report.sizes, "before": report.before,
                                                  "after": report.after, "options": _jsonable(options),
                                                  "image_settings": report.image_settings})
    state.set_state(library, state.PENDING_META, state.state_of(heads))
    return finish(library, heads, report, progress, cancel)


def _image_stage(job: _Job, views: Views) -> tuple[Head | None, dict]:
    """Stage 1: the image head, from the training photos' views and the near-duplicate clusters."""
    matrix, split, options = job.vectors.matrix, job.split, job.options
    readable = views.readable(len(split.train))
    order = np.random.default_rng(options.seed + 3).permutation(readable)
    n_val = int(len(order) * VALIDATION) if len(order) >= 5 * MIN_HELDOUT else 0
    fit, val = np.sort(order[n_val:]), np.sort(order[:n_val])
    job.progress(Progress("near-duplicates", 0, 1))
    val_rows = set(split.train[val].tolist())
    clusters = [c[~np.isin(c, list(val_rows))] for c in
                pseudo.near_duplicate_clusters(matrix, split.pool, options.dup_threshold, options.seed)]
    x, y, added = image_classes(matrix, split.train[fit], views.subset(fit), [c for c in clusters if len(c) > 1])
    validate = None
    if n_val:
        held = views.subset(val)
        others = _sample(np.setdiff1d(split.pool, split.train), options.distractors // 4, options.seed)
        data = guard.GuardData(matrix[split.train[val]], held.vectors, held.owner, matrix[others])
        validate = lambda head: guard.near_duplicates(data, head)["mAP@100"]  # noqa: E731 - one expression
    found = select_image_head(x, y, options.epochs, options.seed, _epochs(job.progress, "image head"), job.cancel,
                              anchors=matrix[split.pool], validate=validate)
    if found is None:
        return None, {}
    head, settings, score = found
    job.chosen = {"margin": settings.margin, "scale": settings.scale, "keep": settings.keep,
                  "validation_mAP@100": round(score, 4) if validate else None,
                  "validation_base_mAP@100": round(validate(Head.identity(x.shape[1], 1)), 4) if validate else None}
    sizes = {"training_photos": len(fit), "validation_photos": n_val, "views_per_photo": options.views,
             "encoded_views": len(views.vectors), "near_duplicate_clusters": len(clusters),
             "cluster_classes_added": added}
    return head, sizes


def _text_stage(job: _Job, image_head: Head, held_rows: np.ndarray):
    """Stage 2: the text head, on the pseudo-captions of every photo not held out; and the guard's data.

    Returns (heads, guard data without its views, sizes), or None if cancelled.
    """
    vectors, split, options = job.vectors, job.split, job.options
    captions = pseudo.pseudo_captions(job.library, vectors.ids)
    row_of = {int(pid): i for i, pid in enumerate(vectors.ids)}
    train_pairs = pseudo.text_pairs(captions, row_of, split.pool, options.text_pairs, options.seed)
    held_pairs = pseudo.text_pairs(captions, row_of, held_rows, options.text_pairs, options.seed)
    texts = encode_batched(job.engine.encode_text, train_pairs.texts + held_pairs.texts, "captions", job.progress,
                           job.cancel)
    if job.cancel.cancelled:
        return None
    dim = vectors.matrix.shape[1]
    text_head = Head.identity(dim, dim, options.seed + 1)  # no pseudo-captions: text vectors stay as they are
    if len(train_pairs):
        rows, compact = np.unique(train_pairs.pairs[:, 1], return_inverse=True)
        text_head = train_text_head(texts[: len(train_pairs.texts)], image_head.apply(vectors.matrix[rows]),
                                    np.stack([train_pairs.pairs[:, 0], compact], 1), TextSettings(epochs=options.epochs),
                                    options.seed, _epochs(job.progress, "text head"), job.cancel)
        if text_head is None:
            return None
    distractors = _sample(split.pool, options.distractors, options.seed)
    data = guard.GuardData(vectors.matrix[held_rows], np.zeros((0, dim), np.float32), np.zeros(0, np.int64),
                           vectors.matrix[distractors])
    if len(held_pairs):
        gallery = np.concatenate([vectors.ids[held_rows], vectors.ids[distractors]])
        data.text_sets["heldout_captions"] = (texts[len(train_pairs.texts):],
                                              text_relevance(held_pairs.texts, gallery, captions))
    sizes = {"text_pairs": len(train_pairs), "heldout_text_pairs": len(held_pairs)}
    return Heads(image_head, text_head, job.engine.key), data, sizes


def _add_coco(data: guard.GuardData, engine, folder: Path, progress, cancel) -> bool:
    coco = load_coco(folder)
    if not coco.files:
        return True
    captions = [c for caps in coco.captions for c in caps]
    owner = np.repeat(np.arange(len(coco.files)), [len(caps) for caps in coco.captions])
    images = encode_batched(engine.encode_files, [str(f) for f in coco.files], "coco_mini images", progress, cancel,
                            chunk=32)
    texts = None if images is None else encode_batched(engine.encode_text, captions, "coco_mini captions", progress,
                                                        cancel)
    if texts is None:
        return False
    data.coco = (images, texts, owner)
    return True


def _paths(library: Library) -> dict[int, str]:
    with library.session() as s:
        return dict(s.execute(select(Photo.id, Photo.path)).all())


def _sample(rows: np.ndarray, k: int, seed: int) -> np.ndarray:
    if len(rows) <= k:
        return rows
    return np.sort(np.random.default_rng(seed + 7).choice(rows, k, replace=False))


def _epochs(progress: ProgressCallback, phase: str):
    return lambda done, total: progress(Progress(phase, done, total))


def _stopped(report: TuneReport) -> TuneReport:
    report.cancelled = True
    report.reasons.append("stopped before any tuned vector was written: the library searches as before")
    return report


def _jsonable(options: TuneOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}


class _Clock:
    """Seconds per phase, into ``seconds``: what the report says each part took."""

    def __init__(self, seconds: dict) -> None:
        self.seconds, self.last = seconds, time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self.last, 2)
        self.last = now
