"""``clipdesk ocr run|show|status``: words in photos."""

from __future__ import annotations

import argparse

from clipdesk.cli.support import ProgressBar, emit, library, photo_id, say, sigint_cancels


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    oc = sub.add_parser("ocr", parents=[common], help="read the words in photos (OCR), offline; then search finds them")
    actions = oc.add_subparsers(dest="ocr_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", parents=[common],
                             help="read the words in photos not read yet (Ctrl-C stops; run again to continue)")
    run.add_argument("--ids", nargs="+", default=None, metavar="ID_OR_FILE", help="only these photos")
    run.add_argument("--force", action="store_true", help="read again photos already read with this engine")
    run.add_argument("--batch-size", type=int, default=8, help="photos per transaction (default 8)")
    run.set_defaults(func=cmd_run)
    show = actions.add_parser("show", parents=[common], help="the words read in one photo, with confidences")
    show.add_argument("photo", metavar="ID_OR_FILE")
    show.set_defaults(func=cmd_show)
    status = actions.add_parser("status", parents=[common], help="how many photos are read, with text, to do")
    status.set_defaults(func=cmd_status)


def cmd_run(args) -> int:
    from clipdesk.jobs import CancelToken
    from clipdesk.ocr.engine import OcrEngine
    from clipdesk.ocr.run import PHASE, ocr_library

    lib = library(args)
    ids = None if args.ids is None else [photo_id(lib, ref) for ref in args.ids]
    engine = OcrEngine()
    with sigint_cancels(CancelToken()) as token, ProgressBar(not args.json, phase=PHASE) as bar:
        report = ocr_library(lib, engine, ids, batch=max(1, args.batch_size), force=args.force, progress=bar,
                             cancel=token)
    data = {"library": str(lib.root), "engine": engine.key, **vars(report)}
    data["failures"] = [{"path": p, "reason": r} for p, r in report.failures or []]
    rate = f", {report.read / report.seconds:.2f} photos/s" if report.read and report.seconds else ""
    human = [f"{'Stopped' if report.cancelled else 'Read'}: {report.read} of {report.todo} photos to do "
             f"({report.photos} in the library{rate}): {report.with_text} with text ({report.lines} lines), "
             f"{report.failed} could not be read."]
    human += [f"skipped: {p}: {r}" for p, r in report.failures or []]
    emit(args, data, human)
    if report.cancelled:
        say("stopped. Run 'clipdesk ocr run' again to continue; what was read is kept.")
        return 130
    return 0


def cmd_show(args) -> int:
    from clipdesk.ocr.store import photo_status, photo_text

    lib = library(args)
    pid = photo_id(lib, args.photo)
    state = photo_status(lib, pid)
    lines = photo_text(lib, pid)
    data = {"photo": pid, "status": state[0] if state else "not run", "reason": state[1] if state else None,
            "lines": [{"text": ln.text, "confidence": ln.confidence, "box": ln.box} for ln in lines]}
    if state is None:
        human = [f"Photo {pid} has not been read yet. Run: clipdesk ocr run --ids {pid}"]
    elif state[0] == "failed":
        human = [f"Photo {pid} could not be read: {state[1]}"]
    elif not lines:
        human = [f"Photo {pid}: no text found."]
    else:
        human = [f"{ln.confidence:.2f}  {ln.text}" for ln in lines]
    emit(args, data, human)
    return 0


def cmd_status(args) -> int:
    from clipdesk.ocr.engine import LANGUAGES, engine_key
    from clipdesk.ocr.run import ocr_status

    lib = library(args)
    data = ocr_status(lib, engine_key())
    data["languages"] = LANGUAGES
    emit(args, data, [f"{data['photos']} photos: {data['with_text']} with text, {data['without_text']} without, "
                      f"{data['failed']} unreadable; {data['todo']} to do (clipdesk ocr run).",
                      f"Engine: {data['engine']}", f"Reads: {LANGUAGES}"])
    return 0
