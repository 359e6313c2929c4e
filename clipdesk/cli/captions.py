"""``clipdesk captions run|show|set|train|export-xmp``."""

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
    ca = sub.add_parser("captions", parents=[common], help="describe photos in words (captions run), show, edit")
    actions = ca.add_subparsers(dest="captions_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", parents=[common],
                             help="caption indexed photos (Ctrl-C stops; run again to continue)")
    add_backend_options(run)
    run.add_argument("--ids", nargs="+", default=None, metavar="ID_OR_FILE", help="only these photos")
    run.add_argument("--force", action="store_true", help="caption again photos this model already captioned")
    run.add_argument("--batch-size", type=int, default=8, help="photos per batch and transaction (default 8)")
    run.set_defaults(func=cmd_run)
    show = actions.add_parser("show", parents=[common], help="a photo's captions with source, model and score")
    show.add_argument("photo", metavar="ID_OR_FILE")
    show.set_defaults(func=cmd_show)
    cs = actions.add_parser("set", parents=[common],
                            help="write a photo's caption by hand (never overwritten; \"\" removes it)")
    cs.add_argument("photo", metavar="ID_OR_FILE")
    cs.add_argument("text")
    cs.set_defaults(func=cmd_set)
    tr = actions.add_parser("train", parents=[common],
                            help="train the text-only caption decoder for the library's model")
    tr.add_argument("--epochs", type=int, help="passes over the caption text")
    tr.add_argument("--max-captions", type=int, help="train on at most N captions (0: all)")
    tr.set_defaults(func=cmd_train)
    add_export_xmp(actions, common, "captions (as dc:description)", "all captioned", cmd_export_xmp)


def add_backend_options(p: argparse.ArgumentParser) -> None:
    """How captions are made: ``captions run`` and ``eval captions``."""
    from clipdesk.captions.base import BACKENDS, DEFAULT_CANDIDATES, DEFAULT_MAX_LEN

    p.add_argument("--backend", choices=BACKENDS, default="coca",
                   help="coca: a generative model reads each photo; decoder: the trained text-only decoder "
                        "reads the stored embedding (fast, needs 'captions train')")
    p.add_argument("--caption-model", metavar="NAME",
                   help="CoCa preset (coca-vit-b-32, coca-vit-l-14, tiny-coca), ARCH/TAG or ARCH:CHECKPOINT")
    p.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES,
                   help=f"candidates per photo, reranked by CLIP (default {DEFAULT_CANDIDATES})")
    p.add_argument("--method", choices=("beam", "nucleus"), default="beam", help="beam search or nucleus sampling")
    p.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN,
                   help=f"longest caption in tokens (default {DEFAULT_MAX_LEN})")


def captioner(args, lib, encoder):
    """The captioner ``add_backend_options`` describes, reranking with ``encoder``."""
    from clipdesk.captions.backends import make_captioner

    return make_captioner(args.backend, lib.root, encoder, caption_model=args.caption_model, device=args.device,
                          method=args.method, max_len=args.max_len, batch_size=max(1, getattr(args, "batch_size", 8)),
                          precision=getattr(args, "precision", "auto"))


def cmd_run(args) -> int:
    from clipdesk.captions.run import PHASE, caption_library
    from clipdesk.jobs import CancelToken

    lib = library(args)
    encoder = engine(args, lib)  # the library's search model, with at least one photo embedded
    require_indexed(args, lib, encoder)
    ids = None if args.ids is None else [photo_id(lib, ref) for ref in args.ids]
    maker = captioner(args, lib, encoder)
    with sigint_cancels(CancelToken()) as token, ProgressBar(not args.json, phase=PHASE) as bar:
        report = caption_library(lib, maker, encoder, ids, n=max(1, args.candidates),
                                 batch=max(1, args.batch_size), force=args.force, progress=bar, cancel=token)
    data = {"library": str(lib.root), "backend": args.backend, "caption_model": maker.model_key, **vars(report)}
    human = [f"{'Stopped' if report.cancelled else 'Captioned'}: {report.captioned} of {report.todo} photos to do "
             f"({report.photos} indexed), {report.failed} could not be captioned."]
    if "random" in maker.model_key or encoder.spec.random_init:
        data["warning"] = "test-only random model: captions are meaningless"
        human.insert(0, "(test-only random model; captions are meaningless)")
    emit(args, data, human)
    if report.cancelled:
        say("stopped. Run 'clipdesk captions run' again to continue; captions so far are kept.")
        return 130
    return 0


def cmd_show(args) -> int:
    from clipdesk.captions.store import photo_captions

    lib = library(args)
    pid = photo_id(lib, args.photo)
    caps = photo_captions(lib, pid)
    data = {"photo": pid, "captions": [{"text": c.text, "source": c.source, "model": c.model_key,
                                        "score": None if c.score is None else round(c.score, 4),
                                        "created_at": c.created_at} for c in caps]}
    human = [f"{c.source:4s}  {c.text}" + (f"    ({c.model_key}, CLIP {c.score:.3f})" if c.source == "auto" else "")
             for c in caps] or [f"Photo {pid} has no caption yet. Run: clipdesk captions run --ids {pid}"]
    emit(args, data, human)
    return 0


def cmd_set(args) -> int:
    from clipdesk.captions.store import set_user_caption

    lib = library(args)
    pid = photo_id(lib, args.photo)
    info = set_user_caption(lib, pid, args.text)
    emit(args, {"photo": pid, "text": info.text if info else None},
         [f"Photo {pid}: " + (f"caption set to {info.text!r}." if info else "hand-written caption removed.")])
    return 0


def cmd_train(args) -> int:
    from clipdesk.captions.train import train
    from clipdesk.jobs import CancelToken

    lib = library(args)
    encoder = engine(args, lib)
    options = {}
    if args.epochs is not None:
        options["epochs"] = max(1, args.epochs)
    if args.max_captions is not None:
        options["max_captions"] = args.max_captions or None
    # Every phase (encoding the captions, then the epochs) gets its own bar.
    with sigint_cancels(CancelToken()) as token, ProgressBar(not args.json, unit="it") as bar:
        result = train(encoder, lib.root, progress=bar, cancel=token, **options)
    data = {"library": str(lib.root), "model": encoder.spec.name, **vars(result)}
    if result.cancelled:
        emit(args, data, ["Stopped: nothing saved (encoded captions are cached; run again to resume)."])
        return 130
    held = result.held_out or {}
    human = [f"Trained the caption decoder for '{encoder.spec.name}' on {result.captions} captions "
             f"({result.epochs} epochs, {result.seconds:.0f} s): {result.path}"]
    if held.get("text"):
        # BLEU-4 is None where nltk is absent (the packaged app); token F1 always exists.
        metric = "bleu4" if held["text"].get("bleu4") is not None else "token_f1"
        human.append(f"Held-out text reconstruction {metric} {held['text'][metric]:.3f} "
                     f"(most frequent caption: {held['baseline'][metric]:.3f}).")
    emit(args, data, human)
    return 0


def cmd_export_xmp(args) -> int:
    from sqlalchemy import select

    from clipdesk.captions.store import best_captions
    from clipdesk.labels.xmp import SidecarConflict, write_sidecar
    from clipdesk.store.models import Photo

    lib = library(args)
    wanted = [photo_id(lib, ref) for ref in args.photos] or None
    captions = best_captions(lib, wanted)
    with lib.session() as s:
        present = s.execute(select(Photo.id, Photo.path).where(Photo.missing_since.is_(None))).all()
    paths = {pid: path for pid, path in present if pid in captions}
    written, skipped = [], []
    for pid in sorted(paths):
        try:
            written.append(str(write_sidecar(paths[pid], caption=captions[pid], force=args.force)))
        except SidecarConflict as exc:
            skipped.append(str(exc))
    human = [f"Wrote {len(written)} sidecars (the photos themselves are never modified)."]
    human += [f"skipped: {reason}" for reason in skipped]
    emit(args, {"written": written, "skipped": skipped}, human)
    return 0
