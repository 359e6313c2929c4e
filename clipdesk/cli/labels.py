"""``clipdesk label run|list|review|accept|reject|export-xmp``."""

from __future__ import annotations

import argparse

from clipdesk.cli.support import (
    ProgressBar,
    add_export_xmp,
    emit,
    engine,
    library,
    photo_id,
    require_indexed,
    say,
    sigint_cancels,
)


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """The ``label`` command and its actions, each bound to its function."""
    la = sub.add_parser("label", parents=[common], help="propose labels for photos (label run), list them")
    actions = la.add_subparsers(dest="label_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", parents=[common], help="label every indexed photo (Ctrl-C stops; run again to continue)")
    run.add_argument("--batch-size", type=int, default=512, help="photos per transaction (default 512)")
    _add_thresholds(run)
    run.set_defaults(func=cmd_run)
    actions.add_parser("list", parents=[common], help="labels in the library with photo counts").set_defaults(func=cmd_list)
    rev = actions.add_parser("review", parents=[common],
                             help="the label decisions clipdesk is least sure of; answer with accept/reject")
    rev.add_argument("--label", dest="only_label", metavar="NAME", help="only this label")
    rev.add_argument("-k", "--top", type=int, default=20, help="how many (default 20)")
    _add_thresholds(rev)
    rev.set_defaults(func=cmd_review)
    for verb, text in (("accept", "confirm a label on a photo"),
                       ("reject", "say a label is wrong for a photo: it never comes back there")):
        fb = actions.add_parser(verb, parents=[common], help=text)
        fb.add_argument("photo", metavar="ID_OR_FILE")
        fb.add_argument("label_name", metavar="LABEL")
        fb.set_defaults(func=cmd_feedback)
    add_export_xmp(actions, common, "labels (and captions)", "all labelled", cmd_export_xmp)


def _add_thresholds(p: argparse.ArgumentParser) -> None:
    p.add_argument("--margin", type=float, help="how far a label must beat the generic 'a photo' prompts")
    p.add_argument("--z", type=float, help="how many spreads above the library's usual score for a label")


def _thresholds(args) -> dict[str, float]:
    from clipdesk.labels.scoring import DEFAULT_MARGIN, DEFAULT_Z

    return {"margin": DEFAULT_MARGIN if args.margin is None else args.margin,
            "z": DEFAULT_Z if args.z is None else args.z}


def _vocabulary(lib):
    from clipdesk.labels.vocab import load_vocabulary

    return load_vocabulary(lib.root)


def cmd_run(args) -> int:
    from clipdesk.errors import QueryError
    from clipdesk.jobs import CancelToken
    from clipdesk.labels.run import label_library

    lib = library(args)
    encoder = engine(args, lib)
    require_indexed(args, lib, encoder)
    vocabulary = _vocabulary(lib)
    if not len(vocabulary):
        raise QueryError("The label vocabulary is empty: add labels to labels.yaml in the library folder.")
    with sigint_cancels(CancelToken()) as token, ProgressBar(not args.json, phase="labelling") as bar:
        report = label_library(lib, encoder, vocabulary, bar, token, batch=max(1, args.batch_size), **_thresholds(args))
    data = {"library": str(lib.root), "model": encoder.spec.name, "labels": len(vocabulary), **vars(report)}
    human = [f"{'Stopped' if report.cancelled else 'Labelled'}: {report.labelled} of {report.todo} photos to do "
             f"({report.photos} indexed); {report.with_labels} got labels, {report.proposed} proposals, "
             f"{report.removed} stale removed, {report.kept} left as you decided."]
    if report.learned:
        human.append(f"Learned from your accept/reject answers: {', '.join(report.learned)}"
                     + (f" (re-decided on every photo: {', '.join(report.relearned)})" if report.relearned else ""))
    if encoder.spec.random_init:
        data["warning"] = "test-only random model: labels are meaningless"
        human.insert(0, f"(model {encoder.spec.label}; labels are meaningless)")
    emit(args, data, human)
    if report.cancelled:
        say("stopped. Run 'clipdesk label run' again to continue; labels so far are kept.")
        return 130
    return 0


def cmd_list(args) -> int:
    from clipdesk.labels.run import label_counts

    lib = library(args)
    counts = label_counts(lib)
    vocabulary = _vocabulary(lib)
    for entry in counts:
        label = vocabulary.get(entry["label"])
        entry["path"] = label.path if label else entry["label"]
    data = {"library": str(lib.root), "vocabulary": len(vocabulary), "labels": counts}
    human = [f"{e['photos']:7d}  {e['path']}" + (f"  ({e['rejected']} rejected)" if e["rejected"] else "")
             for e in counts] or ["No labels yet. Run: clipdesk label run"]
    emit(args, data, human)
    return 0


def cmd_review(args) -> int:
    from clipdesk.errors import QueryError
    from clipdesk.labels.review import review_queue

    lib = library(args)
    vocabulary = _vocabulary(lib)
    label = vocabulary.get(args.only_label) if args.only_label else None
    if args.only_label and label is None:
        raise QueryError(f"No label {args.only_label!r} in the vocabulary.")
    items = review_queue(lib, engine(args, lib), vocabulary, limit=max(1, args.top),
                         label=label.name if label else None, **_thresholds(args))
    data = {"items": [{"id": it.photo_id, "path": it.path, "label": it.label, "proposed": it.proposed,
                       "score": round(it.score, 4), "margin": round(it.margin, 3),
                       "evidence": [[d, round(v, 4)] for d, v in it.evidence[:3]]} for it in items]}
    human = [f"{it.photo_id:6d}  {'yes?' if it.proposed else 'no? '}  {it.label:<20} {it.margin:+6.2f}  {it.path}"
             for it in items] or ["Nothing to review: run 'clipdesk label run' first."]
    if items:
        human.append("Answer with: clipdesk label accept|reject ID LABEL (then 'label run' relearns).")
    emit(args, data, human)
    return 0


def cmd_feedback(args) -> int:
    """``label accept`` and ``label reject``."""
    from clipdesk.labels.feedback import set_feedback

    lib = library(args)
    label = _vocabulary(lib).get(args.label_name)
    name = label.name if label is not None else args.label_name.strip().lower()
    accepted = args.label_command == "accept"
    pid = photo_id(lib, args.photo)
    row = set_feedback(lib, pid, name, accepted)
    emit(args, {"photo": pid, "label": name, "status": row.status},
         [f"{'Accepted' if accepted else 'Rejected'} '{name}' on photo {pid}."])
    return 0


def cmd_export_xmp(args) -> int:
    from clipdesk.labels.export import export_sidecars

    lib = library(args)
    report = export_sidecars(lib, _vocabulary(lib), [photo_id(lib, ref) for ref in args.photos], force=args.force)
    human = [f"Wrote {len(report.written)} sidecars (the photos themselves are never modified)."]
    human += [f"skipped: {reason}" for reason in report.skipped]
    human += [f"kept: {note}" for note in report.notes]
    emit(args, {"written": report.written, "skipped": report.skipped, "notes": report.notes}, human)
    return 0
