"""``clipdesk eval labels`` (ImageNet sample) and ``clipdesk eval captions`` (COCO photos)."""

from __future__ import annotations

from pathlib import Path

from clipdesk.cli.captions import add_backend_options, captioner
from clipdesk.cli.support import ProgressBar, emit, engine, library


def add_parsers(sub, common) -> None:
    ev = sub.add_parser("eval", help="measure label accuracy (ImageNet sample) or caption quality (COCO photos)")
    what = ev.add_subparsers(dest="eval_what", metavar="WHAT", required=True)
    lab = what.add_parser("labels", parents=[common], help="top-1/top-5 and precision vs coverage")
    lab.add_argument("--data", metavar="DIR", help="imagenet_sample folder (default: the shared data)")
    lab.add_argument("--limit", type=int, default=0, help="use only the first N images (default: all)")
    lab.add_argument("--batch-size", type=int, default=32)
    lab.add_argument("--descriptors", metavar="YAML", help="descriptor file (default: the shipped one)")
    lab.set_defaults(func=cmd_eval_labels)
    cap = what.add_parser("captions", parents=[common], help="BLEU-4, METEOR, CIDEr, CLIPScore on the COCO photos")
    add_backend_options(cap)
    cap.add_argument("--data", metavar="DIR", help="coco_mini folder (default: the shared data)")
    cap.add_argument("--limit", type=int, default=0, help="use only the first N photos (default: all)")
    cap.add_argument("--held-out", type=int, default=300,
                     help="decoder only: held-out captions for the text reconstruction report (default 300)")
    cap.add_argument("--no-meteor", action="store_true", help="skip METEOR (it starts Java)")
    cap.set_defaults(func=cmd_eval_captions)


def cmd_eval_labels(args) -> int:
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
    encoder = engine(args, library(args), args.batch_size)
    with ProgressBar(not args.json, desc="embedding") as bar:
        bar.count(0, len(evalset.files))
        result = evaluate(encoder, evalset, descriptors, args.batch_size, bar.count)
    result["model"] = encoder.spec.name
    emit(args, result, format_report(result, encoder.spec.name))
    return 0


def cmd_eval_captions(args) -> int:
    from clipdesk.captions.eval import evaluate, find_data, format_report, load_set

    lib = library(args)
    evalset = load_set(Path(args.data) if args.data else find_data(), args.limit)
    encoder = engine(args, lib)
    maker = captioner(args, lib, encoder)
    with ProgressBar(not args.json, desc="captioning") as bar:
        bar.count(0, len(evalset.files))
        result = evaluate(maker, encoder, evalset, n=max(1, args.candidates), meteor=not args.no_meteor,
                          progress=bar.count)
    if args.backend == "decoder":
        from clipdesk.captions.textdata import load_split
        from clipdesk.captions.train import evaluate_text_reconstruction

        held = load_split().held_out_captions(args.held_out)
        result["text_reconstruction"] = evaluate_text_reconstruction(maker.decoder, encoder, held)
    result["backend"] = args.backend
    if encoder.spec.random_init or "random" in maker.model_key:
        result["warning"] = "test-only random model: the scores say nothing about caption quality"
    human = format_report(result)
    if "warning" in result:
        human.insert(0, f"({result['warning']})")
    emit(args, result, human)
    return 0
