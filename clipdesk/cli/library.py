"""``clipdesk index``, ``status`` and ``errors``: filling the library and reporting on it."""

from __future__ import annotations

import os

from clipdesk.cli.options import positive_int
from clipdesk.cli.support import ProgressBar, emit, engine, library, model_name, say, sigint_cancels


def add_index_parser(sub, common) -> None:
    ix = sub.add_parser("index", parents=[common], help="add folders (or files) and index new and changed photos")
    ix.add_argument("paths", nargs="+", metavar="PATH")
    ix.add_argument("--batch-size", type=positive_int, default=32)
    ix.add_argument("--workers", type=int, default=-1, help="decode processes (default: CPU count - 1, at least 2; 0: inline)")
    ix.set_defaults(func=cmd_index)


def add_report_parsers(sub, common) -> None:
    sub.add_parser("status", parents=[common], help="library counts, model and index state").set_defaults(func=cmd_status)
    er = sub.add_parser("errors", parents=[common], help="files that could not be indexed, with the reason")
    er.add_argument("--limit", type=int, default=0, help="show at most N (default: all)")
    er.set_defaults(func=cmd_errors)


def cmd_index(args) -> int:
    from clipdesk.config import CoreConfig
    from clipdesk.errors import QueryError
    from clipdesk.indexer import index
    from clipdesk.jobs import CancelToken
    from clipdesk.store.db import MODEL_META
    from clipdesk.tuning.manage import refresh  # photos new since a tuning get their tuned vectors too

    lib = library(args)
    for path in args.paths:
        if not os.path.exists(path):
            raise QueryError(f"No such file or folder: {path}")
    encoder = engine(args, lib, args.batch_size)
    encoder.model  # noqa: B018 - a missing model fails here, before any work
    lib.set_meta(MODEL_META, model_name(encoder.spec))
    config = CoreConfig(batch_size=args.batch_size, decode_workers=args.workers)
    with sigint_cancels(CancelToken()) as token, ProgressBar(not args.json, phase="indexing") as bar:
        report = index(lib, args.paths, encoder, config, progress=bar, cancel=token)
        tuned = 0 if report.cancelled else refresh(lib, encoder, bar, token)
    graph = None if report.cancelled else _update_graph(args, lib, config)
    data = {"library": str(lib.root), "model": encoder.spec.name, **vars(report), "tuned_vectors_written": tuned,
            "graph": graph}
    human = [
        f"{'Stopped' if report.cancelled else 'Indexed'}: {report.found} photos found, {report.new} new, "
        f"{report.changed} changed, {report.moved} moved, {report.unchanged} unchanged, "
        f"{report.embedded} embedded, {report.missing} gone, {report.errors} errors.",
    ]
    if report.errors:
        human.append("Run 'clipdesk errors' to see the files that could not be indexed.")
    emit(args, data, human)
    if report.cancelled:
        say("stopped. Run the same 'clipdesk index' again to continue where it stopped; "
            "photos already indexed are kept.")
        return 130
    return 0


def _update_graph(args, lib, config) -> dict | None:
    """Bring the search graph up to date now, so that the next search need not (a large library only)."""
    from clipdesk.search.probes import text_probes
    from clipdesk.store.vectors import VectorIndex

    encoder = engine(args, lib, tuned=True)
    index = VectorIndex(lib, encoder.key, config.hnsw_min_size, probes=text_probes(encoder))
    if index.mode != "hnsw":
        return None
    say("updating the search graph...")
    index.hnsw()
    return vars(index.graph.stats)


def cmd_status(args) -> int:
    from sqlalchemy import func, select

    from clipdesk.config import CoreConfig
    from clipdesk.engine.registry import DEFAULT_PRESET, resolve
    from clipdesk.store.db import MODEL_META
    from clipdesk.store.models import Embedding, Folder, Photo, ScanError
    from clipdesk.tuning.active import unwrap

    lib = library(args)
    model = args.model or lib.get_meta(MODEL_META)
    spec = resolve(model)
    encoder = engine(args, lib, tuned=True)
    key = unwrap(encoder).key  # the precision in use is part of the identity
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
        "model_is_default": model is None or model == DEFAULT_PRESET,
        "photos": photos, "embedded": embedded, "not_embedded": photos - embedded, "missing": missing,
        "errors": errors, "folders": folders, "search_mode": "hnsw" if embedded >= hnsw_min else "exact",
        "search_key": encoder.key, "tuned": encoder.key != key,
    }
    human = [
        f"Library: {lib.root}",
        f"Model:   {spec.label}",
        f"Photos:  {photos} ({embedded} embedded, {photos - embedded} waiting), {missing} gone from disk",
        f"Errors:  {errors}" + (" (clipdesk errors lists them)" if errors else ""),
        *([f"Tuning:  searches use {encoder.key} (clipdesk tune --status; --revert undoes it)"] if data["tuned"]
          else []),
        "Folders:",
        *[f"  {f['photos']:7d}  {f['path']}" + ("" if f["complete"] else "  (scan not finished)") for f in folders],
    ]
    emit(args, data, human)
    return 0


def cmd_errors(args) -> int:
    from sqlalchemy import select

    from clipdesk.store.models import ScanError

    lib = library(args)
    with lib.session() as s:
        stmt = select(ScanError.path, ScanError.reason, ScanError.seen_at).order_by(ScanError.path)
        if args.limit:
            stmt = stmt.limit(args.limit)
        rows = s.execute(stmt).all()
    data = {"library": str(lib.root), "errors": [{"path": p, "reason": r, "seen_at": t} for p, r, t in rows]}
    human = [f"{p}: {r}" for p, r, _ in rows] or ["No errors."]
    emit(args, data, human)
    return 0
