"""``clipdesk tune``: tune the library's embedding space for retrieval (and ``--revert``, ``--status``)."""

from __future__ import annotations

from clipdesk.cli.options import positive_int
from clipdesk.cli.support import ProgressBar, emit, engine, library, require_indexed, say, sigint_cancels


def add_parsers(sub, common) -> None:
    tu = sub.add_parser("tune", parents=[common],
                        help="tune similar-image search for this library (text search kept); --revert undoes it")
    mode = tu.add_mutually_exclusive_group()
    mode.add_argument("--revert", action="store_true", help="go back to the base vectors, exactly as before tuning")
    mode.add_argument("--status", action="store_true", help="whether a tuning is active, and its figures")
    tu.add_argument("--photos", type=positive_int, default=2000, metavar="N",
                    help="at most N photos have augmented views encoded to train on (default 2000)")
    tu.add_argument("--budget", type=float, default=240.0, metavar="SECONDS",
                    help="stop taking more photos once encoding their views took this long, keeping at least "
                         "200 (default 240: about 1,500 photos with ViT-B/32 on 2 CPU cores; 0: no limit)")
    tu.add_argument("--views", type=positive_int, default=4, metavar="N", help="views per photo (default 4)")
    tu.add_argument("--heldout", type=positive_int, default=64, metavar="N",
                    help="photos kept out of training to check the result on (default 64)")
    tu.add_argument("--epochs", type=positive_int, default=30, metavar="N", help="training epochs per head (default 30)")
    tu.add_argument("--coco", metavar="DIR", help="also check text search on this coco_mini folder (default: the "
                    "shared data's, when present)")
    tu.add_argument("--no-coco", action="store_true", help="do not check text search on coco_mini")
    tu.set_defaults(func=cmd_tune)


def cmd_tune(args) -> int:
    if args.revert:
        return _revert(args)
    if args.status:
        return _status(args)
    from pathlib import Path

    from clipdesk.eval.data import COCO, shared_data_root
    from clipdesk.jobs import CancelToken
    from clipdesk.tuning.run import TuneOptions, tune

    lib = library(args)
    base = engine(args, lib)
    require_indexed(args, lib, base)
    base.model  # noqa: B018 - a missing model fails here, before any work
    coco = None
    if not args.no_coco:
        root = shared_data_root()
        coco = Path(args.coco) if args.coco else (root / COCO if root and (root / COCO).is_dir() else None)
    options = TuneOptions(photos=args.photos, views=args.views, heldout=args.heldout, epochs=args.epochs, coco=coco,
                          budget_s=args.budget if args.budget > 0 else None)
    with sigint_cancels(CancelToken()) as token, ProgressBar(not args.json) as bar:
        report = tune(lib, base, options, progress=bar, cancel=token)
    data = {"library": str(lib.root), "model": base.spec.name, **vars(report), "coco": str(coco) if coco else None}
    if base.spec.random_init:
        data["warning"] = "test-only random model: these figures say nothing about retrieval quality"
    emit(args, data, _human(report))
    if report.cancelled:
        say("stopped; the library searches as before. Run 'clipdesk tune' again to "
            + ("continue writing the tuned vectors." if report.tuned_key else "start over."))
        return 130
    return 0


def _human(report) -> list[str]:
    if report.cancelled and not report.before:
        return ["Stopped before training finished: nothing changed."]
    lines = []
    if report.kept:
        lines.append(f"Tuned: searches now use {report.tuned_key} ({report.written} vectors written). "
                     "Undo with: clipdesk tune --revert")
    elif report.cancelled:
        lines.append(f"Stopped while writing the tuned vectors ({report.written} written); the base is still used.")
    else:
        lines.append("Not kept: the tuned heads did not pass the check on held-out photos, so searches keep "
                     "using the base vectors.")
    if report.before:
        lines.append(f"{'':34s} {'before':>7s} {'after':>7s}")
        for section, values in report.before.items():
            for metric, value in values.items():
                if metric != "n":
                    name = f"{section.replace('_', ' ')} {metric}"
                    lines.append(f"  {name:32s} {value:7.3f} {report.after[section][metric]:7.3f}")
    lines += [f"  - {reason}" for reason in report.reasons]
    if report.sizes:
        s = report.sizes
        lines.append(f"Trained on {s['training_photos']} photos x {s['views_per_photo']} views, "
                     f"{s['cluster_classes_added']} near-duplicate groups and {s['text_pairs']} caption/label texts; "
                     f"checked on {s['heldout_photos']} held-out photos ({s['heldout_views']} edited copies)."
                     + (f" {s['not_viewed_for_time']} more photos were left out to keep to --budget."
                        if s.get("not_viewed_for_time") else ""))
    if report.seconds:
        lines.append("Took " + ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items()) + ".")
    return lines


def _revert(args) -> int:
    from clipdesk.tuning.manage import revert

    lib = library(args)
    result = revert(lib)
    human = [f"Reverted: {result['removed_vectors']} tuned vectors removed; searches use the base vectors again."
             if result["reverted"] or result["removed_vectors"] else "No tuning to revert: the base vectors are in use."]
    if result["without_base_vectors"]:
        human.append(f"{result['without_base_vectors']} photos were indexed while the tuning was on and have no base "
                     "vector yet: run 'clipdesk index FOLDER' to embed them.")
    emit(args, {"library": str(lib.root), **result}, human)
    return 0


def _status(args) -> int:
    from clipdesk.tuning.manage import tuning_status

    lib = library(args)
    st = tuning_status(lib)
    if st["active"]:
        human = [f"Tuning active: searches use {st['key']}",
                 f"  {st['tuned_vectors']} tuned vectors, {st['base_vectors']} base vectors kept for --revert"
                 + (f"; {st['stale']} photos lack a current tuned vector (run 'clipdesk tune')" if st.get("stale")
                    else ""),
                 f"  heads: {st['heads_file']}"]
        side = st.get("sidecar") or {}
        for section, values in (side.get("before") or {}).items():
            after = side["after"][section]
            human.append(f"  {section.replace('_', ' ')}: "
                         + ", ".join(f"{m} {v:.3f} -> {after[m]:.3f}" for m, v in values.items() if m != "n"))
    else:
        human = ["No tuning active: searches use the base vectors."]
    if st["pending"]:
        human.append("A tuning stopped while writing its vectors: 'clipdesk tune' continues it.")
    last = st.get("last") or {}
    if last and not st["active"]:
        human.append(f"Last run: {last.get('outcome')} ({str(last.get('when'))[:19]} UTC)")
        human += [f"  - {r}" for r in last.get("reasons") or []]
    emit(args, {"library": str(lib.root), **st}, human)
    return 0
