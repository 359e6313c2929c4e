"""The CLI's subcommands. Each takes parsed args, prints, returns an exit code."""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager

from sqlalchemy import func, select

from clipdesk.config import CoreConfig
from clipdesk.errors import NotIndexed, QueryError
from clipdesk.jobs import CancelToken, Progress
from clipdesk.labels.eval_cli import cmd_eval  # noqa: F401 - dispatched as cmd_<command>
from clipdesk.paths import library_dir, models_dir
from clipdesk.store.db import MODEL_META, Library
from clipdesk.store.models import Embedding, Folder, Photo, ScanError
from clipdesk.store.queries import find_photo


def _library(args) -> Library:
    return Library(library_dir(args.library))


def _engine(args, lib: Library, batch_size: int = 32):
    from clipdesk.engine.backend import make_engine  # torch, or ONNX Runtime in the packaged app
    from clipdesk.engine.registry import resolve

    spec = resolve(args.model or lib.get_meta(MODEL_META))
    _check_device(args.device)
    return make_engine(spec, device=args.device, batch_size=batch_size, precision=getattr(args, "precision", "auto"))




def _check_device(device: str) -> None:
    """A bad ``--device`` is a usage error, not a missing model (the engine cannot tell them apart)."""
    from clipdesk.engine.clip import DEVICE_PATTERN

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


def _model_name(spec) -> str:
    """The ``--model`` text that finds this model again from any directory."""
    from clipdesk.engine.registry import PRESETS

    if spec.name.lower() in PRESETS:
        return spec.name.lower()
    if spec.checkpoint:
        return f"{spec.arch}:{spec.checkpoint}"  # absolute: a relative path breaks from another cwd
    return spec.name


def _emit(args, data: dict, human: list[str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        for line in human:
            print(line)


@contextmanager
def _sigint_cancels(token: CancelToken):
    """First Ctrl-C: finish the current batch and stop. Second: stop now."""
    def handler(signum, frame):
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("\nclipdesk: stopping after the current batch (Ctrl-C again to abort)...", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Bar:
    """tqdm on an interactive stderr, for one phase of a job; silent otherwise."""

    def __init__(self, enabled: bool, phase: str = "indexing") -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.phase = phase
        self.bar = None

    def __call__(self, p: Progress) -> None:
        if not self.enabled or p.phase != self.phase:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=p.total, unit="photo", desc=self.phase, file=sys.stderr, dynamic_ncols=True)
        self.bar.update(p.done - self.bar.n)
        if p.errors:
            self.bar.set_postfix(errors=p.errors, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_index(args) -> int:
    from clipdesk.indexer import index

    lib = _library(args)
    for path in args.paths:
        if not os.path.exists(path):
            raise QueryError(f"No such file or folder: {path}")
    engine = _engine(args, lib, args.batch_size)
    engine.model  # noqa: B018 - a missing model fails here, before any work
    lib.set_meta(MODEL_META, _model_name(engine.spec))
    config = CoreConfig(batch_size=args.batch_size, decode_workers=args.workers)
    token = CancelToken()
    bar = _Bar(not args.json)
    with _sigint_cancels(token):
        try:
            report = index(lib, args.paths, engine, config, progress=bar, cancel=token)
        finally:
            bar.close()
    data = {"library": str(lib.root), "model": engine.spec.name, **{k: v for k, v in vars(report).items()}}
    human = [
        f"{'Stopped' if report.cancelled else 'Indexed'}: {report.found} photos found, {report.new} new, "
        f"{report.changed} changed, {report.moved} moved, {report.unchanged} unchanged, "
        f"{report.embedded} embedded, {report.missing} gone, {report.errors} errors.",
    ]
    if report.errors:
        human.append("Run 'clipdesk errors' to see the files that could not be indexed.")
    _emit(args, data, human)
    if report.cancelled:
        # On stderr, so that it shows with --json too.
        print("clipdesk: stopped. Run the same 'clipdesk index' again to continue where it stopped; "
              "photos already indexed are kept.", file=sys.stderr)
        return 130
    return 0


def _searcher(args):
    from clipdesk.search import Searcher

    lib = _library(args)
    engine = _engine(args, lib)
    with lib.session() as s:
        count = s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model_key == engine.key))
    if not count:
        raise NotIndexed(_not_indexed_message(lib, engine.spec, explicit=bool(args.model), precision=engine.precision))
    return Searcher(lib, engine, CoreConfig().hnsw_min_size, cutoff=not engine.spec.random_init), engine


def _not_indexed_message(lib: Library, spec, explicit: bool, precision: str = "fp32") -> str:
    with lib.session() as s:
        photos = s.scalar(select(func.count()).select_from(Photo))
    if not photos:
        return f"The library {lib.root} has no photos yet. Run: clipdesk index FOLDER (then search again)."
    model_flag = f"--model {_model_name(spec)} " if explicit else ""
    message = f"No photos in {lib.root} are indexed with model '{spec.name}'."
    from clipdesk.engine.registry import embedding_key

    others = {embedding_key(spec, p): p for p in ("fp32", "fp16", "bf16") if p != precision}
    with lib.session() as s:
        found = s.scalars(select(Embedding.model_key).where(Embedding.model_key.in_(others)).limit(1)).first()
    if found is not None:  # the same model at another precision: its own vectors, so say which flag finds them
        return (f"{message[:-1]} at {precision}; they are indexed at {others[found]}, a separate set of embeddings. "
                f"Add --precision {others[found]}, or run: clipdesk {model_flag}--precision {precision} index FOLDER")
    current = lib.get_meta(MODEL_META)
    if current and current != _model_name(spec):
        message += f" The library was last indexed with '{current}': drop --model, or"
    else:
        message += " Run:"
    return f"{message} clipdesk {model_flag}index FOLDER"


def _filters(args):
    from clipdesk.search import Filters

    types = tuple(t.strip() for t in args.types.split(",") if t.strip())
    return Filters(folder=args.folder, date_from=args.date_from, date_to=args.date_to, types=types)


def _image_term(searcher, ref: str, weight: float = 1.0):
    from clipdesk.search import Term

    photo_id = find_photo(searcher.library, ref)
    if photo_id is not None:
        return Term("photo", photo_id, weight)
    if ref.isdigit() and not os.path.exists(ref):
        raise QueryError(f"No photo with id {ref} in this library.")
    if not os.path.isfile(ref):
        raise QueryError(f"No such image file: {ref}")
    return Term("file", os.path.abspath(ref), weight)


def _run_query(args, searcher, engine, terms, query_text: str, photo_ids=None) -> int:
    """``photo_ids``: restrict the search to these photos (e.g. those with a label)."""
    from dataclasses import replace

    from clipdesk.imageio import ImageReadError

    filters = _filters(args)
    if photo_ids is not None:
        filters = replace(filters, photo_ids=frozenset(int(i) for i in photo_ids))
    try:
        result = searcher.search(terms, k=args.top, filters=filters, min_score=args.min_score,
                                 show_all=args.all)
    except (ImageReadError, OSError) as exc:
        raise QueryError(f"Cannot read the query image: {exc}") from None
    data = {
        "query": query_text,
        "model": engine.spec.name,
        "mode": result.mode,
        "considered": result.considered,
        "no_good_match": result.no_good_match,
        "results": [{"id": h.photo_id, "path": h.path, "score": round(h.score, 4), "relevant": h.relevant}
                    for h in result.hits],
    }
    human = [f"{h.score:6.3f}  {h.path}" + ("" if h.relevant else "  (weak match)") for h in result.hits]
    if engine.spec.random_init:
        data["warning"] = "test-only random model: scores are meaningless and no relevance cut-off is applied"
        human.insert(0, f"(model {engine.spec.label}; no relevance cut-off)")
    if result.no_good_match:
        human.append(f"No good matches for {query_text!r} among {result.considered} photos."
                     + ("" if args.all else " Use --all to list the closest anyway."))
    _emit(args, data, human)
    return 0


def _query_text(words: list[str], negatives: list[str]) -> str:
    """Query words plus ``--not`` terms (``search beach -people`` arrives as both)."""
    import shlex

    def negative(term: str) -> str:
        term = term.lstrip("-")
        # '-"red car"' keeps the user's own quotes; -red car (the shell ate them) gets quoted here.
        return "-" + (term if term[:1] in "\"'" else shlex.quote(term))

    return " ".join([*words, *(negative(n) for n in negatives if n.strip("- "))]).strip()


def cmd_search(args) -> int:
    from clipdesk.search import parse_text_query

    if getattr(args, "label", None):
        from clipdesk.labels.commands import search_with_label

        return search_with_label(args)
    text = _query_text(args.text, args.negatives)
    if not text and not args.image:
        raise QueryError("Say what to search for, e.g. clipdesk search beach -people")
    terms = parse_text_query(text, require_positive=not args.image) if text else []
    searcher, engine = _searcher(args)
    terms += [_image_term(searcher, ref) for ref in args.image]
    return _run_query(args, searcher, engine, terms, " ".join([text, *args.image]).strip())


def cmd_label(args) -> int:
    from clipdesk.labels.commands import cmd_label as run

    return run(args)


def cmd_captions(args) -> int:
    from clipdesk.captions.commands import cmd_captions as run

    return run(args)


def cmd_similar(args) -> int:
    from clipdesk.search import parse_text_query

    text = _query_text([*args.words, args.text], args.negatives)
    extra = parse_text_query(text, require_positive=False) if text else []  # the image is the positive
    searcher, engine = _searcher(args)
    terms = [_image_term(searcher, args.ref), *extra]
    return _run_query(args, searcher, engine, terms, f"{args.ref} {text}".strip())


def cmd_status(args) -> int:
    lib = _library(args)
    model_name = args.model or lib.get_meta(MODEL_META)
    from clipdesk.engine.registry import DEFAULT_PRESET, resolve

    spec = resolve(model_name)
    key = _engine(args, lib).key  # the precision in use is part of the identity
    with lib.session() as s:
        photos = s.scalar(select(func.count()).select_from(Photo).where(Photo.missing_since.is_(None)))
        missing = s.scalar(select(func.count()).select_from(Photo).where(Photo.missing_since.is_not(None)))
        embedded = s.scalar(
            select(func.count()).select_from(Embedding).join(Photo, Photo.id == Embedding.photo_id)
            .where(Embedding.model_key == key, Photo.missing_since.is_(None))
        )
        errors = s.scalar(select(func.count()).select_from(ScanError))
        folders = [
            {"path": path, "photos": n or 0, "last_scan": last, "complete": done}
            for path, last, done, n in s.execute(
                select(Folder.path, Folder.last_scan_at, Folder.scan_complete, func.count(Photo.id))
                .outerjoin(Photo, (Photo.folder_id == Folder.id) & Photo.missing_since.is_(None))
                .group_by(Folder.id).order_by(Folder.path)
            )
        ]
    hnsw_min = CoreConfig().hnsw_min_size
    data = {
        "library": str(lib.root), "model": spec.name, "model_key": key,
        "model_is_default": model_name is None or model_name == DEFAULT_PRESET,
        "photos": photos, "embedded": embedded, "not_embedded": photos - embedded, "missing": missing,
        "errors": errors, "folders": folders, "search_mode": "hnsw" if embedded >= hnsw_min else "exact",
    }
    human = [
        f"Library: {lib.root}",
        f"Model:   {spec.label}",
        f"Photos:  {photos} ({embedded} embedded, {photos - embedded} waiting), {missing} gone from disk",
        f"Errors:  {errors}" + (" (clipdesk errors lists them)" if errors else ""),
        "Folders:",
        *[f"  {f['photos']:7d}  {f['path']}" + ("" if f["complete"] else "  (scan not finished)") for f in folders],
    ]
    _emit(args, data, human)
    return 0


def cmd_errors(args) -> int:
    lib = _library(args)
    with lib.session() as s:
        stmt = select(ScanError.path, ScanError.reason, ScanError.seen_at).order_by(ScanError.path)
        if args.limit:
            stmt = stmt.limit(args.limit)
        rows = s.execute(stmt).all()
    data = {"library": str(lib.root), "errors": [{"path": p, "reason": r, "seen_at": t} for p, r, t in rows]}
    human = [f"{p}: {r}" for p, r, _ in rows] or ["No errors."]
    _emit(args, data, human)
    return 0


def cmd_models(args) -> int:
    action = getattr(args, "action", "list")
    if action == "export-onnx":
        from clipdesk.engine.onnx_cli import cmd_export_onnx

        return cmd_export_onnx(args)
    if action == "download":
        from clipdesk.engine.onnx_cli import cmd_download

        return cmd_download(args, _sigint_cancels)
    from clipdesk.engine.registry import DEFAULT_PRESET, PRESETS, resolve
    from clipdesk.engine.sources import loadable_here, weight_source, weights_present

    rows, skipped = [], []
    for name in PRESETS:
        spec = resolve(name)  # a preset's checkpoint file, under the models folder
        why_not = loadable_here(spec)
        if why_not:  # the packaged app lists only what it can run
            skipped.append(f"{name} ({why_not})")
            continue
        source = weight_source(spec)
        rows.append({"name": spec.name, "arch": spec.arch, "pretrained": spec.pretrained, "base_tag": spec.base_tag,
                     "checkpoint": spec.checkpoint, "url": spec.url,
                     "file": (source.path.name if source.path else (source.filenames or [None])[0]),
                     "hub_repo": source.repo, "default": spec.name == DEFAULT_PRESET,
                     "test_only": spec.random_init, "weights_present": weights_present(spec),
                     "description": spec.description})
    human = [f"{'*' if r['default'] else ' '} {r['name']:17s} {'ready     ' if r['weights_present'] else 'not local '}"
             f"{r['description']}" for r in rows]
    human.append(f"Model files are cached in {models_dir()} (CLIPDESK_MODELS overrides); "
                 "a model that is not local downloads on first use, or now with: clipdesk models download NAME.")
    if skipped:
        human.append("Not available in this build: " + "; ".join(skipped) + ".")
    _emit(args, {"models": rows, "models_dir": str(models_dir()), "unavailable": skipped}, human)
    return 0
