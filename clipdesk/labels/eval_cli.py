"""The ``clipdesk eval labels`` command; kept apart from cli.py, hooked in with one line.

Imports nothing heavy at module level: cli.py builds its parser on every run.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_eval_parser(sub, common) -> None:
    """``clipdesk eval labels``; hooked into cli.build_parser with one line."""
    ev = sub.add_parser("eval", help="measure label accuracy (ImageNet sample) or caption quality (COCO photos)")
    what = ev.add_subparsers(dest="eval_what", metavar="WHAT", required=True)
    lab = what.add_parser("labels", parents=[common], help="top-1/top-5 and precision vs coverage")
    lab.add_argument("--data", metavar="DIR", help="imagenet_sample folder (default: the shared data)")
    lab.add_argument("--limit", type=int, default=0, help="use only the first N images (default: all)")
    lab.add_argument("--batch-size", type=int, default=32)
    lab.add_argument("--descriptors", metavar="YAML", help="descriptor file (default: the shipped one)")
    from clipdesk.captions.commands import add_eval_parser as add_captions

    add_captions(what, common)


def cmd_eval(args) -> int:
    if args.eval_what == "captions":
        from clipdesk.captions.commands import cmd_eval_captions

        return cmd_eval_captions(args)
    from clipdesk.commands import _emit, _engine, _library
    from clipdesk.labels.eval import (
        DESCRIPTORS,
        EvalDataError,
        evaluate,
        find_data,
        format_report,
        load_descriptors,
        load_set,
    )

    evalset = load_set(Path(args.data) if args.data else find_data(), args.limit)
    if not evalset.files:
        raise EvalDataError("No images to evaluate.")
    descriptors = load_descriptors(Path(args.descriptors) if args.descriptors else DESCRIPTORS)
    engine = _engine(args, _library(args), args.batch_size)
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(evalset.files), unit="photo", desc="embedding", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    try:
        result = evaluate(engine, evalset, descriptors, args.batch_size, progress)
    finally:
        if bar is not None:
            bar.close()
    result["model"] = engine.spec.name
    _emit(args, result, format_report(result, engine.spec.name))
    return 0
