"""``clipdesk duplicates [--tier T] [--json]``, ``duplicates trash`` (asks first) and ``duplicates undo [BATCH]``."""

from __future__ import annotations

import argparse
import sys

from clipdesk.cli.support import ProgressBar, emit, engine, library, say, sigint_cancels

TIER_CHOICES = ("exact", "near", "similar")


def add_parsers(sub, common) -> None:
    du = sub.add_parser("duplicates", parents=[common],
                        help="find exact copies, near-duplicates (edited copies) and bursts; trash the extras, undo")
    _add_find_options(du)
    du.set_defaults(func=cmd_find)
    actions = du.add_subparsers(dest="duplicates_command", metavar="ACTION")
    tr = actions.add_parser("trash", parents=[common],
                            help="move all but the keeper of each group to the system trash (asks first); "
                                 "exact and near groups unless --tier similar or --groups names them")
    _add_find_options(tr)
    tr.add_argument("--groups", type=int, nargs="+", metavar="N", help="only these groups (numbers as listed)")
    tr.add_argument("--yes", action="store_true", help="confirm without asking")
    tr.set_defaults(func=cmd_trash)
    un = actions.add_parser("undo", parents=[common], help="bring back photos clipdesk moved to the trash")
    un.add_argument("batch", nargs="?", help="the batch to restore (default: the latest)")
    un.set_defaults(func=cmd_undo)


def _add_find_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tier", choices=TIER_CHOICES, help="only groups of this tier")
    p.add_argument("--window", type=float, default=120.0, metavar="SECONDS",
                   help="how far apart in time a burst's shots may be (default 120)")


def _find(args, lib):
    from clipdesk.duplicates.grouping import Thresholds
    from clipdesk.duplicates.run import find_duplicates
    from clipdesk.jobs import CancelToken

    encoder = engine(args, lib)
    # The test-only random model's vectors mean nothing: group on hashes and times alone.
    use_cosine = not encoder.spec.random_init
    with sigint_cancels(CancelToken()) as token, ProgressBar(not args.json) as bar:
        result = find_duplicates(lib, encoder.key, use_cosine, args.tier, Thresholds(window_s=args.window),
                                 progress=bar, cancel=token)
    if result.cancelled:
        say("stopped. Hashes so far are kept; run again to continue.")
    return result


def cmd_find(args) -> int:
    from clipdesk.duplicates.grouping import evidence_words

    lib = library(args)
    result = _find(args, lib)
    if result.cancelled:
        return 130
    groups = [dict(g.as_json(), number=n) for n, g in enumerate(result.groups, 1)]
    data = {"groups": groups, "hashed": result.hashing.hashed, "unreadable": result.hashing.failed,
            "used_embeddings": result.used_embeddings,
            "thresholds": vars(result.thresholds) if result.thresholds else None}
    human = []
    for g in groups:
        human.append(f"#{g['number']} {g['tier']}: keep {g['keeper']} ({g['keeper_reason']})")
        human += [f"    {p['path']}  ({evidence_words(p['evidence'])})" for p in g["photos"][1:]]
    human.append(f"{len(groups)} groups." + ("" if result.used_embeddings else
                                             " (Grouped on hashes and capture times only: no usable embeddings.)"))
    for path, reason in result.hashing.errors:
        say(f"skipped {path}: {reason}")
    emit(args, data, human)
    return 0


def cmd_trash(args) -> int:
    from clipdesk.duplicates.trash import move_to_trash

    lib = library(args)
    result = _find(args, lib)
    if result.cancelled:
        return 130
    # A burst is several shots, not copies of one: its extras go only when asked for by tier or number.
    chosen = [g for n, g in enumerate(result.groups, 1)
              if (n in args.groups if args.groups else (args.tier is not None or g.tier != "similar"))]
    plan = [(m.photo_id, g.keeper) for g in chosen for m in g.members if m.photo_id != g.keeper]
    paths = [m.path for g in chosen for m in g.members if m.photo_id != g.keeper]
    if not plan:
        emit(args, {"moved": [], "confirmed": False}, ["No duplicates to move."])
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            emit(args, {"moved": [], "would_move": paths, "confirmed": False},
                 [*(f"would move {p}" for p in paths),
                  f"Nothing moved: {len(paths)} photos would go to the trash. Add --yes to confirm."])
            return 1
        for p in paths:
            print(f"  {p}", file=sys.stderr)
        answer = input(f"Move these {len(paths)} photos to the trash (the keepers stay)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            say("nothing moved.")
            return 1
    report = move_to_trash(lib, plan)
    human = [f"Moved {len(report.moved)} photos to the trash (batch {report.batch_id}). "
             f"Undo: clipdesk duplicates undo {report.batch_id}"]
    human += [f"could not move {p}: {r}" for p, r in report.failed]
    emit(args, {"batch": report.batch_id, "moved": report.moved, "failed": report.failed, "confirmed": True}, human)
    return 0 if not report.failed else 1


def cmd_undo(args) -> int:
    from clipdesk.duplicates.trash import undo

    lib = library(args)
    report = undo(lib, args.batch)
    human = [report.message] if report.message else []
    if report.batch_id and not report.message:
        human.append(f"Restored {len(report.restored)} photos (batch {report.batch_id}).")
    human += [f"could not restore {p}: {r}" for p, r in report.failed]
    emit(args, {"batch": report.batch_id, "restored": report.restored, "failed": report.failed,
                "message": report.message}, human)
    return 0 if not report.failed else 1
