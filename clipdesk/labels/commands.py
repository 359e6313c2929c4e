"""``clipdesk label run|list`` and ``clipdesk search --label NAME``."""

from __future__ import annotations

import argparse
import sys

# Imported by the parser on every ``clipdesk`` start: numpy, SQLAlchemy and
# the core load inside the functions, when a label command actually runs.


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    """The ``label`` command and its subcommands."""
    la = sub.add_parser("label", parents=[common], help="propose labels for photos (label run), list them")
    actions = la.add_subparsers(dest="label_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", parents=[common], help="label every indexed photo (Ctrl-C stops; run again to continue)")
    run.add_argument("--batch-size", type=int, default=512, help="photos per transaction (default 512)")
    _add_thresholds(run)
    actions.add_parser("list", parents=[common], help="labels in the library with photo counts")
    rev = actions.add_parser("review", parents=[common],
                             help="the label decisions clipdesk is least sure of; answer with accept/reject")
    rev.add_argument("--label", dest="only_label", metavar="NAME", help="only this label")
    rev.add_argument("-k", "--top", type=int, default=20, help="how many (default 20)")
    _add_thresholds(rev)
    for verb, text in (("accept", "confirm a label on a photo"),
                       ("reject", "say a label is wrong for a photo: it never comes back there")):
        fb = actions.add_parser(verb, parents=[common], help=text)
        fb.add_argument("photo", metavar="ID_OR_FILE")
        fb.add_argument("label_name", metavar="LABEL")
    xmp = actions.add_parser("export-xmp", parents=[common],
                             help="write labels (and captions) to XMP sidecars next to the photos (name.ext.xmp)")
    xmp.add_argument("photos", nargs="*", metavar="ID_OR_FILE", help="photos to export (default: all labelled)")
    xmp.add_argument("--force", action="store_true", help="merge into sidecars written by other tools too")


def _add_thresholds(p: argparse.ArgumentParser) -> None:
    p.add_argument("--margin", type=float, help="how far a label must beat the generic 'a photo' prompts")
    p.add_argument("--z", type=float, help="how many spreads above the library's usual score for a label")


def add_search_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", metavar="NAME", help="only photos carrying this label (not rejected)")


def cmd_label(args) -> int:
    from clipdesk import commands

    lib = commands._library(args)  # noqa: SLF001 - the CLI's shared helpers
    if args.label_command == "list":
        return _list(args, lib)
    if args.label_command in ("accept", "reject"):
        return _feedback(args, lib)
    if args.label_command == "export-xmp":
        return _export_xmp(args, lib)
    if args.label_command == "review":
        return _review(args, lib)
    return _run(args, lib)


def _photo_id(lib, ref: str) -> int:
    from clipdesk.errors import QueryError
    from clipdesk.store.queries import find_photo

    found = find_photo(lib, ref)
    if found is None:
        raise QueryError(f"No photo {ref!r} in this library.")
    return found


def _feedback(args, lib) -> int:
    from clipdesk import commands
    from clipdesk.labels.feedback import set_feedback

    label = _vocabulary(lib).get(args.label_name)
    name = label.name if label is not None else args.label_name.strip().lower()
    accepted = args.label_command == "accept"
    photo_id = _photo_id(lib, args.photo)
    row = set_feedback(lib, photo_id, name, accepted)
    commands._emit(args, {"photo": photo_id, "label": name, "status": row.status},  # noqa: SLF001
                   [f"{'Accepted' if accepted else 'Rejected'} '{name}' on photo {photo_id}."])
    return 0


def _export_xmp(args, lib) -> int:
    from clipdesk import commands
    from clipdesk.labels.export import export_sidecars

    report = export_sidecars(lib, _vocabulary(lib), [_photo_id(lib, ref) for ref in args.photos], force=args.force)
    human = [f"Wrote {len(report.written)} sidecars (the photos themselves are never modified)."]
    human += [f"skipped: {reason}" for reason in report.skipped]
    commands._emit(args, {"written": report.written, "skipped": report.skipped}, human)  # noqa: SLF001
    return 0


def _review(args, lib) -> int:
    from clipdesk import commands
    from clipdesk.labels.review import review_queue

    vocabulary = _vocabulary(lib)
    label = vocabulary.get(args.only_label) if args.only_label else None
    if args.only_label and label is None:
        from clipdesk.errors import QueryError

        raise QueryError(f"No label {args.only_label!r} in the vocabulary.")
    from clipdesk.labels.scoring import DEFAULT_MARGIN, DEFAULT_Z

    items = review_queue(lib, commands._engine(args, lib), vocabulary, limit=max(1, args.top),  # noqa: SLF001
                         label=label.name if label else None,
                         margin=DEFAULT_MARGIN if args.margin is None else args.margin,
                         z=DEFAULT_Z if args.z is None else args.z)
    data = {"items": [{"id": it.photo_id, "path": it.path, "label": it.label, "proposed": it.proposed,
                       "score": round(it.score, 4), "margin": round(it.margin, 3),
                       "evidence": [[d, round(v, 4)] for d, v in it.evidence[:3]]} for it in items]}
    human = [f"{it.photo_id:6d}  {'yes?' if it.proposed else 'no? '}  {it.label:<20} {it.margin:+6.2f}  {it.path}"
             for it in items] or ["Nothing to review: run 'clipdesk label run' first."]
    if items:
        human.append("Answer with: clipdesk label accept|reject ID LABEL (then 'label run' relearns).")
    commands._emit(args, data, human)  # noqa: SLF001
    return 0


def _vocabulary(lib):
    from clipdesk.labels.vocab import load_vocabulary

    return load_vocabulary(lib.root)


def _run(args, lib) -> int:
    from sqlalchemy import func, select

    from clipdesk import commands
    from clipdesk.errors import NotIndexed, QueryError
    from clipdesk.jobs import CancelToken
    from clipdesk.labels.run import label_library
    from clipdesk.labels.scoring import DEFAULT_MARGIN, DEFAULT_Z
    from clipdesk.store.models import Embedding

    engine = commands._engine(args, lib)  # noqa: SLF001
    with lib.session() as s:
        count = s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model_key == engine.key))
    if not count:
        raise NotIndexed(commands._not_indexed_message(lib, engine.spec, explicit=bool(args.model),
                                                             precision=engine.precision))  # noqa: SLF001
    vocabulary = _vocabulary(lib)
    if not len(vocabulary):
        raise QueryError("The label vocabulary is empty: add labels to labels.yaml in the library folder.")
    token = CancelToken()
    bar = commands._Bar(not args.json, phase="labelling")  # noqa: SLF001
    with commands._sigint_cancels(token):  # noqa: SLF001
        try:
            report = label_library(lib, engine, vocabulary, bar, token, batch=max(1, args.batch_size),
                                   margin=DEFAULT_MARGIN if args.margin is None else args.margin,
                                   z=DEFAULT_Z if args.z is None else args.z)
        finally:
            bar.close()
    data = {"library": str(lib.root), "model": engine.spec.name, "labels": len(vocabulary), **vars(report)}
    human = [f"{'Stopped' if report.cancelled else 'Labelled'}: {report.labelled} of {report.todo} photos to do "
             f"({report.photos} indexed); {report.with_labels} got labels, {report.proposed} proposals, "
             f"{report.removed} stale removed, {report.kept} left as you decided."]
    if report.learned:
        human.append(f"Learned from your accept/reject answers: {', '.join(report.learned)}"
                     + (f" (re-decided on every photo: {', '.join(report.relearned)})" if report.relearned else ""))
    if engine.spec.random_init:
        data["warning"] = "test-only random model: labels are meaningless"
        human.insert(0, f"(model {engine.spec.label}; labels are meaningless)")
    commands._emit(args, data, human)  # noqa: SLF001
    if report.cancelled:
        print("clipdesk: stopped. Run 'clipdesk label run' again to continue; labels so far are kept.",
              file=sys.stderr)
        return 130
    return 0


def _list(args, lib) -> int:
    from clipdesk import commands
    from clipdesk.labels.run import label_counts

    counts = label_counts(lib)
    vocabulary = _vocabulary(lib)
    for entry in counts:
        label = vocabulary.get(entry["label"])
        entry["path"] = label.path if label else entry["label"]
    data = {"library": str(lib.root), "vocabulary": len(vocabulary), "labels": counts}
    human = [f"{e['photos']:7d}  {e['path']}" + (f"  ({e['rejected']} rejected)" if e["rejected"] else "")
             for e in counts] or ["No labels yet. Run: clipdesk label run"]
    commands._emit(args, data, human)  # noqa: SLF001
    return 0


# -- search --label ---------------------------------------------------------------------


def labelled_photo_ids(lib, name: str):
    """The label's canonical name, its (non-rejected) photos (ids, ascending), and their scores."""
    import numpy as np
    from sqlalchemy import select

    from clipdesk.store.models import Label, Photo

    label = _vocabulary(lib).get(name)
    canonical = label.name if label else name.strip().lower()
    with lib.session() as s:
        rows = s.execute(
            select(Label.photo_id, Label.score).join(Photo, Photo.id == Label.photo_id)
            .where(Label.label == canonical, Label.status != "rejected", Photo.missing_since.is_(None))
        ).all()
    return canonical, np.asarray(sorted(r[0] for r in rows), np.int64), {r[0]: r[1] or 0.0 for r in rows}


def search_with_label(args) -> int:
    """``search --label NAME [query]``: the query's results among the label's photos, or all of them."""

    from clipdesk import commands
    from clipdesk.search import parse_text_query

    text = commands._query_text(args.text, args.negatives)  # noqa: SLF001
    if not text and not args.image:
        return _list_labelled(args)
    terms = parse_text_query(text, require_positive=not args.image) if text else []
    searcher, engine = commands._searcher(args)  # noqa: SLF001
    terms += [commands._image_term(searcher, ref) for ref in args.image]  # noqa: SLF001
    _, ids, _ = labelled_photo_ids(searcher.library, args.label)
    query = " ".join([text, *args.image]).strip()
    return commands._run_query(args, searcher, engine, terms, query, photo_ids=ids)  # noqa: SLF001


def _list_labelled(args) -> int:
    from dataclasses import replace

    from sqlalchemy import select

    from clipdesk import commands
    from clipdesk.search import filter_photo_ids
    from clipdesk.store.models import Photo

    lib = commands._library(args)  # noqa: SLF001
    canonical, ids, scores = labelled_photo_ids(lib, args.label)
    passing = filter_photo_ids(lib, replace(commands._filters(args), photo_ids=frozenset(ids.tolist())))  # noqa: SLF001
    with lib.session() as s:
        paths = dict(s.execute(select(Photo.id, Photo.path).where(Photo.id.in_(passing.tolist()))).all())
    keep = [(pid, paths[pid], scores[pid]) for pid in passing.tolist()]
    keep.sort(key=lambda r: (-r[2], r[0]))
    shown = keep[: args.top] if not args.all else keep
    data = {"label": canonical, "count": len(keep), "query": "", "no_good_match": not keep,
            "results": [{"id": pid, "path": path, "score": round(score, 4)} for pid, path, score in shown]}
    human = [f"{score:6.3f}  {path}" for _, path, score in shown]
    human.append(f"{len(keep)} photos labelled '{canonical}'" + (f"; showing {len(shown)} (-k N or --all for more)."
                                                               if len(shown) < len(keep) else "."))
    commands._emit(args, data, human)  # noqa: SLF001
    return 0
