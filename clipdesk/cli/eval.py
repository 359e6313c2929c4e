"""``clipdesk eval labels`` (ImageNet sample), ``eval captions`` (COCO photos) and ``eval retrieval`` (both, and
the user's own folders, pairs and labels)."""

from __future__ import annotations

from pathlib import Path

from clipdesk.cli.captions import add_backend_options, captioner
from clipdesk.cli.support import ProgressBar, emit, engine, library, model_name, sigint_cancels


def add_parsers(sub, common) -> None:
    ev = sub.add_parser("eval", help="measure label accuracy (ImageNet sample), caption quality (COCO photos) or "
                        "retrieval quality")
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
    add_retrieval_parser(what, common)


def add_retrieval_parser(what, common) -> None:
    from clipdesk.eval.transforms import TRANSFORMS

    ret = what.add_parser("retrieval", parents=[common],
                          help="text-to-image R@k, near-duplicate mAP, zero-shot top-1; --folders, --pairs, labels")
    ret.add_argument("--sections", default="text,near,zero,folders,pairs,labels",
                     help="comma-separated, of text, near, zero, folders, pairs, labels (default: all; folders and "
                     "pairs need their option)")
    ret.add_argument("--data", metavar="DIR", help="the shared data folder holding coco_mini and imagenet_sample "
                     "(default: $CLIPDESK_SHARED_DATA, else ../shared/data)")
    ret.add_argument("--limit", type=int, default=0, help="at most N photos from each data set (default: all)")
    ret.add_argument("--batch-size", type=int, default=32)
    ret.add_argument("--near-dup-queries", type=int, default=100, metavar="N",
                     help="query photos of the near-duplicate benchmark (default 100)")
    ret.add_argument("--seed", type=int, default=0, help="seed of the near-duplicate benchmark (default 0)")
    ret.add_argument("--transforms", default=",".join(TRANSFORMS),
                     help="near-duplicate views to make (default: all of " + ", ".join(TRANSFORMS) + ")")
    ret.add_argument("--folders", metavar="DIR", help="a folder of class sub-folders (GPR1200, INSTRE): mAP over all")
    ret.add_argument("--pairs", metavar="FILE", help="lines of two tab-separated paths showing the same photo or "
                     "scene, relative to the file's folder: each finds its partner among the library's photos")
    ret.add_argument("-k", "--knn", type=int, default=10, help="neighbours for the accepted-labels k-NN (default 10)")
    ret.set_defaults(func=cmd_eval_retrieval)


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


def cmd_eval_retrieval(args) -> int:
    from clipdesk.errors import QueryError
    from clipdesk.eval.encode import Embedder
    from clipdesk.eval.report import format_table
    from clipdesk.eval.retrieval import RetrievalOptions, evaluate_retrieval, parse_sections
    from clipdesk.eval.transforms import check_names
    from clipdesk.jobs import CancelToken

    try:
        options = RetrievalOptions(
            sections=parse_sections(args.sections), data=Path(args.data) if args.data else None,
            limit=max(0, args.limit), near_dup_queries=max(1, args.near_dup_queries), seed=args.seed,
            transforms=check_names([t.strip() for t in args.transforms.split(",") if t.strip()]) or None,
            folders=Path(args.folders) if args.folders else None, pairs=Path(args.pairs) if args.pairs else None,
            knn_k=max(1, args.knn))
    except ValueError as exc:
        raise QueryError(f"eval retrieval: {exc}.") from None
    if options.transforms is None:
        raise QueryError("eval retrieval: --transforms names none.")
    lib = library(args)
    encoder = engine(args, lib, args.batch_size, tuned=True)  # a tuned library is judged as it searches
    with sigint_cancels(CancelToken()) as token, ProgressBar(not args.json, desc="encoding") as bar:
        result = evaluate_retrieval(encoder, options, lib, Embedder(encoder, args.batch_size, bar.count, token))
    result = {"model": model_name(encoder.spec), **result}
    if encoder.spec.random_init:
        result["warning"] = "test-only random model: these figures say nothing about retrieval quality"
    emit(args, result, format_table(result))
    return 0
