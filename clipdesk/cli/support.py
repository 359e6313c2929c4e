"""What every ``clipdesk`` subcommand uses: the library and engine from the arguments, output, progress, Ctrl-C.

Command modules import these by name; nothing here imports a command
module. Heavy modules (SQLAlchemy, the engines, tqdm) load inside the
functions: the parser imports every command module on every start.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clipdesk.engine.registry import ModelSpec
    from clipdesk.jobs import CancelToken, Progress
    from clipdesk.store.db import Library


def library(args) -> Library:
    """The library ``--library`` names (or the default one), opened and migrated."""
    from clipdesk.paths import library_dir
    from clipdesk.store.db import Library

    return Library(library_dir(args.library))


def engine(args, lib: Library, batch_size: int = 32, tuned: bool = False):
    """The engine for ``--model`` (or the library's last model), ``--device`` and ``--precision``; not loaded yet.

    ``tuned``: in the library's tuned space when it has an active tuning of
    that model (searching and retrieval evaluation); indexing, labels and
    captions always work with the base vectors, which a tuning never replaces.
    """
    from clipdesk.engine.backend import make_engine  # torch, or ONNX Runtime in the packaged app
    from clipdesk.engine.registry import resolve
    from clipdesk.store.db import MODEL_META

    spec = resolve(args.model or lib.get_meta(MODEL_META))
    check_device(args.device)
    base = make_engine(spec, device=args.device, batch_size=batch_size, precision=getattr(args, "precision", "auto"))
    if not tuned:
        return base
    from clipdesk.tuning.active import wrap_engine

    return wrap_engine(lib, base)


def check_device(device: str) -> None:
    """A bad ``--device`` is a usage error, not a missing model (the engine cannot tell them apart)."""
    from clipdesk.engine.clip import DEVICE_PATTERN
    from clipdesk.errors import QueryError

    if not DEVICE_PATTERN.match(device):
        raise QueryError(f"Unknown device '{device}': use auto, cpu, cuda, cuda:N or mps.")
    if device in ("auto", "cpu"):
        return  # nothing to check; and 'similar ID' never needs torch
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            found = f"{count} CUDA device(s) found" if count else "no CUDA device is available"
            raise QueryError(f"Cannot use --device {device}: {found}. Use --device auto or cpu.")
    elif not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise QueryError("Cannot use --device mps: Metal (MPS) is not available here. Use --device auto or cpu.")


def model_name(spec: ModelSpec) -> str:
    """The ``--model`` text that finds this model again from any directory."""
    from clipdesk.engine.registry import PRESETS

    if spec.name.lower() in PRESETS:
        return spec.name.lower()
    if spec.checkpoint:
        return f"{spec.arch}:{spec.checkpoint}"  # absolute: a relative path breaks from another cwd
    return spec.name


def emit(args, data: dict, human: list[str]) -> None:
    """``data`` as JSON with ``--json``, else the ``human`` lines."""
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        for line in human:
            print(line)


def say(message: str) -> None:
    """One ``clipdesk: …`` line on stderr: shown with ``--json`` too, never mixed into the output."""
    print(f"clipdesk: {message}", file=sys.stderr)


@contextmanager
def sigint_cancels(token: CancelToken) -> Iterator[CancelToken]:
    """First Ctrl-C: finish the current batch and stop. Second: stop now."""
    def handler(signum, frame):
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("\nclipdesk: stopping after the current batch (Ctrl-C again to abort)...", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, previous)


class ProgressBar:
    """The CLI's one progress display: tqdm on an interactive stderr, nothing otherwise (``--json``, a pipe).

    Two ways to feed it:

    * call it with a ``jobs.Progress`` (the core's long jobs): one bar per
      phase, a new one when the phase changes; with ``phase`` set, only that
      phase is shown. Errors so far show after the bar.
    * ``count(done, total)`` for a plain counter (evaluations, downloads);
      ``total`` may grow or be 0 (unknown).
    """

    def __init__(self, enabled: bool = True, *, phase: str | None = None, desc: str | None = None,
                 unit: str = "photo", unit_scale: bool = False) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.phase = phase
        self.desc = desc
        self.unit = unit
        self.unit_scale = unit_scale
        self._bar = None
        self._shown_phase: str | None = None

    def __call__(self, p: Progress) -> None:
        if not self.enabled or (self.phase is not None and p.phase != self.phase):
            return
        if self._bar is not None and p.phase != self._shown_phase:
            self.close()
        self._shown_phase = p.phase
        self._show(p.done, p.total, p.phase)
        if p.errors:
            self._bar.set_postfix(errors=p.errors, refresh=False)

    def count(self, done: int, total: int = 0) -> None:
        if self.enabled:
            self._show(done, total, self.desc)

    def _show(self, done: int, total: int, desc: str | None) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total or None, unit=self.unit, unit_scale=self.unit_scale, desc=desc,
                             file=sys.stderr, dynamic_ncols=True)
        elif total and total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_export_xmp(actions, common, what: str, default: str, func) -> None:
    """``export-xmp``, as the label and caption commands both offer it: a merge, never a replacement."""
    xmp = actions.add_parser("export-xmp", parents=[common],
                             help=f"merge {what} into XMP sidecars next to the photos (name.ext.xmp), keeping what "
                             "other tools wrote there")
    xmp.add_argument("photos", nargs="*", metavar="ID_OR_FILE", help=f"photos to export (default: {default})")
    xmp.add_argument("--force", action="store_true",
                     help="also replace a description (dc:description) another tool wrote with "
                     "clipdesk's caption; everything else in a sidecar is always kept")
    xmp.set_defaults(func=func)


def photo_id(lib: Library, ref: str) -> int:
    """The library photo ``ref`` names (an id, or a file's path); a usage error if there is none."""
    from clipdesk.errors import QueryError
    from clipdesk.store.queries import find_photo

    found = find_photo(lib, ref)
    if found is None:
        raise QueryError(f"No photo {ref!r} in this library.")
    return found


def require_indexed(args, lib: Library, encoder) -> None:
    """Raise ``NotIndexed`` (exit 4) unless some photo has a vector from ``encoder``'s model at its precision.

    ``encoder``: what ``engine()`` returns (an ``engine.base.Encoder`` that also has its ``spec``).
    """
    from sqlalchemy import func, select

    from clipdesk.errors import NotIndexed
    from clipdesk.store.models import Embedding

    with lib.session() as s:
        count = s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model_key == encoder.key))
    if not count:
        raise NotIndexed(not_indexed_message(lib, encoder.spec, explicit=bool(args.model), precision=encoder.precision))


def not_indexed_message(lib: Library, spec: ModelSpec, explicit: bool, precision: str = "fp32") -> str:
    """What to run when nothing is indexed with ``spec`` at ``precision``: index, drop --model, or --precision."""
    from sqlalchemy import func, select

    from clipdesk.engine.registry import ALL_PRECISIONS, embedding_key
    from clipdesk.store.db import MODEL_META
    from clipdesk.store.models import Embedding, Photo

    with lib.session() as s:
        photos = s.scalar(select(func.count()).select_from(Photo))
    if not photos:
        return f"The library {lib.root} has no photos yet. Run: clipdesk index FOLDER (then search again)."
    model_flag = f"--model {model_name(spec)} " if explicit else ""
    message = f"No photos in {lib.root} are indexed with model '{spec.name}'."
    others = {embedding_key(spec, p): p for p in ALL_PRECISIONS if p not in ("auto", precision)}
    with lib.session() as s:
        found = s.scalars(select(Embedding.model_key).where(Embedding.model_key.in_(others)).limit(1)).first()
    if found is not None:  # the same model at another precision: its own vectors, so say which flag finds them
        return (f"{message[:-1]} at {precision}; they are indexed at {others[found]}, a separate set of embeddings. "
                f"Add --precision {others[found]}, or run: clipdesk {model_flag}--precision {precision} index FOLDER")
    current = lib.get_meta(MODEL_META)
    if current and current != model_name(spec):
        message += f" The library was last indexed with '{current}': drop --model, or"
    else:
        message += " Run:"
    return f"{message} clipdesk {model_flag}index FOLDER"
