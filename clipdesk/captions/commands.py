"""``clipdesk captions run|show|set|train|export-xmp`` and ``clipdesk eval captions``."""

from __future__ import annotations

import argparse
import sys

# Imported by the parser on every ``clipdesk`` start: the core loads inside the functions.


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    from clipdesk.captions.base import BACKENDS, DEFAULT_CANDIDATES, DEFAULT_MAX_LEN

    ca = sub.add_parser("captions", parents=[common], help="describe photos in words (captions run), show, edit")
    actions = ca.add_subparsers(dest="captions_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", parents=[common],
                             help="caption indexed photos (Ctrl-C stops; run again to continue)")
    _backend_options(run, BACKENDS, DEFAULT_CANDIDATES, DEFAULT_MAX_LEN)
    run.add_argument("--ids", nargs="+", default=None, metavar="ID_OR_FILE", help="only these photos")
    run.add_argument("--force", action="store_true", help="caption again photos this model already captioned")
    run.add_argument("--batch-size", type=int, default=8, help="photos per batch and transaction (default 8)")
    show = actions.add_parser("show", parents=[common], help="a photo's captions with source, model and score")
    show.add_argument("photo", metavar="ID_OR_FILE")
    cs = actions.add_parser("set", parents=[common],
                            help="write a photo's caption by hand (never overwritten; \"\" removes it)")
    cs.add_argument("photo", metavar="ID_OR_FILE")
    cs.add_argument("text")
    tr = actions.add_parser("train", parents=[common],
                            help="train the text-only caption decoder for the library's model")
    tr.add_argument("--epochs", type=int, help="passes over the caption text")
    tr.add_argument("--max-captions", type=int, help="train on at most N captions (0: all)")
    xmp = actions.add_parser("export-xmp", parents=[common],
                             help="write captions as dc:description to XMP sidecars (name.ext.xmp)")
    xmp.add_argument("photos", nargs="*", metavar="ID_OR_FILE", help="photos to export (default: all captioned)")
    xmp.add_argument("--force", action="store_true", help="merge into sidecars written by other tools too")


def _backend_options(p, backends, candidates: int, max_len: int) -> None:
    p.add_argument("--backend", choices=backends, default="coca",
                   help="coca: a generative model reads each photo; decoder: the trained text-only decoder "
                        "reads the stored embedding (fast, needs 'captions train')")
    p.add_argument("--caption-model", metavar="NAME",
                   help="CoCa preset (coca-vit-b-32, coca-vit-l-14, tiny-coca), ARCH/TAG or ARCH:CHECKPOINT")
    p.add_argument("--candidates", type=int, default=candidates,
                   help=f"candidates per photo, reranked by CLIP (default {candidates})")
    p.add_argument("--method", choices=("beam", "nucleus"), default="beam", help="beam search or nucleus sampling")
    p.add_argument("--max-len", type=int, default=max_len, help=f"longest caption in tokens (default {max_len})")


def add_eval_parser(what, common) -> None:
    """``clipdesk eval captions``, under the ``eval`` command."""
    from clipdesk.captions.base import BACKENDS, DEFAULT_CANDIDATES, DEFAULT_MAX_LEN

    ev = what.add_parser("captions", parents=[common], help="BLEU-4, METEOR, CIDEr, CLIPScore on the COCO photos")
    _backend_options(ev, BACKENDS, DEFAULT_CANDIDATES, DEFAULT_MAX_LEN)
    ev.add_argument("--data", metavar="DIR", help="coco_mini folder (default: the shared data)")
    ev.add_argument("--limit", type=int, default=0, help="use only the first N photos (default: all)")
    ev.add_argument("--held-out", type=int, default=300,
                    help="decoder only: held-out captions for the text reconstruction report (default 300)")
    ev.add_argument("--no-meteor", action="store_true", help="skip METEOR (it starts Java)")


def cmd_captions(args) -> int:
    from clipdesk import commands

    lib = commands._library(args)  # noqa: SLF001 - the CLI's shared helpers
    handler = {"run": _run, "show": _show, "set": _set, "train": _train, "export-xmp": _export_xmp}
    return handler[args.captions_command](args, lib)


def _photo_id(lib, ref: str) -> int:
    from clipdesk.errors import QueryError
    from clipdesk.store.queries import find_photo

    found = find_photo(lib, ref)
    if found is None:
        raise QueryError(f"No photo {ref!r} in this library.")
    return found


def _search_engine(args, lib):
    """The library's search model, with at least one photo embedded."""
    from sqlalchemy import func, select

    from clipdesk import commands
    from clipdesk.errors import NotIndexed
    from clipdesk.store.models import Embedding

    engine = commands._engine(args, lib)  # noqa: SLF001
    with lib.session() as s:
        count = s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model_key == engine.key))
    if not count:
        raise NotIndexed(commands._not_indexed_message(lib, engine.spec, explicit=bool(args.model),
                                                             precision=engine.precision))  # noqa: SLF001
    return engine


def _captioner(args, lib, engine):
    from clipdesk.captions.backends import make_captioner

    return make_captioner(args.backend, lib.root, engine, caption_model=args.caption_model, device=args.device,
                          method=args.method, max_len=args.max_len, batch_size=max(1, getattr(args, "batch_size", 8)),
                          precision=getattr(args, "precision", "auto"))


def _run(args, lib) -> int:
    from clipdesk import commands
    from clipdesk.captions.run import PHASE, caption_library
    from clipdesk.jobs import CancelToken

    engine = _search_engine(args, lib)
    ids = None if args.ids is None else [_photo_id(lib, ref) for ref in args.ids]
    captioner = _captioner(args, lib, engine)
    token = CancelToken()
    bar = commands._Bar(not args.json, phase=PHASE)  # noqa: SLF001
    with commands._sigint_cancels(token):  # noqa: SLF001
        try:
            report = caption_library(lib, captioner, engine, ids, n=max(1, args.candidates),
                                     batch=max(1, args.batch_size), force=args.force, progress=bar, cancel=token)
        finally:
            bar.close()
    data = {"library": str(lib.root), "backend": args.backend, "caption_model": captioner.model_key, **vars(report)}
    human = [f"{'Stopped' if report.cancelled else 'Captioned'}: {report.captioned} of {report.todo} photos to do "
             f"({report.photos} indexed), {report.failed} could not be captioned."]
    if "random" in captioner.model_key or engine.spec.random_init:
        data["warning"] = "test-only random model: captions are meaningless"
        human.insert(0, "(test-only random model; captions are meaningless)")
    commands._emit(args, data, human)  # noqa: SLF001
    if report.cancelled:
        print("clipdesk: stopped. Run 'clipdesk captions run' again to continue; captions so far are kept.",
              file=sys.stderr)
        return 130
    return 0


def _show(args, lib) -> int:
    from clipdesk import commands
    from clipdesk.captions.store import photo_captions

    pid = _photo_id(lib, args.photo)
    caps = photo_captions(lib, pid)
    data = {"photo": pid, "captions": [{"text": c.text, "source": c.source, "model": c.model_key,
                                        "score": None if c.score is None else round(c.score, 4),
                                        "created_at": c.created_at} for c in caps]}
    human = [f"{c.source:4s}  {c.text}" + (f"    ({c.model_key}, CLIP {c.score:.3f})" if c.source == "auto" else "")
             for c in caps] or [f"Photo {pid} has no caption yet. Run: clipdesk captions run --ids {pid}"]
    commands._emit(args, data, human)  # noqa: SLF001
    return 0


def _set(args, lib) -> int:
    from clipdesk import commands
    from clipdesk.captions.store import set_user_caption

    pid = _photo_id(lib, args.photo)
    info = set_user_caption(lib, pid, args.text)
    commands._emit(args, {"photo": pid, "text": info.text if info else None},  # noqa: SLF001
                   [f"Photo {pid}: " + (f"caption set to {info.text!r}." if info else "hand-written caption removed.")])
    return 0


def _train(args, lib) -> int:
    from clipdesk import commands
    from clipdesk.captions.train import train
    from clipdesk.jobs import CancelToken

    engine = commands._engine(args, lib)  # noqa: SLF001
    options = {}
    if args.epochs is not None:
        options["epochs"] = max(1, args.epochs)
    if args.max_captions is not None:
        options["max_captions"] = args.max_captions or None
    token = CancelToken()
    bar = _PhaseBar(not args.json)
    with commands._sigint_cancels(token):  # noqa: SLF001
        try:
            result = train(engine, lib.root, progress=bar, cancel=token, **options)
        finally:
            bar.close()
    data = {"library": str(lib.root), "model": engine.spec.name, **vars(result)}
    if result.cancelled:
        commands._emit(args, data, ["Stopped: nothing saved (encoded captions are cached; run again to resume)."])  # noqa: SLF001
        return 130
    held = result.held_out or {}
    human = [f"Trained the caption decoder for '{engine.spec.name}' on {result.captions} captions "
             f"({result.epochs} epochs, {result.seconds:.0f} s): {result.path}"]
    if held.get("text"):
        # BLEU-4 is None where nltk is absent (the packaged app); token F1 always exists.
        metric = "bleu4" if held["text"].get("bleu4") is not None else "token_f1"
        human.append(f"Held-out text reconstruction {metric} {held['text'][metric]:.3f} "
                     f"(most frequent caption: {held['baseline'][metric]:.3f}).")
    commands._emit(args, data, human)  # noqa: SLF001
    return 0


class _PhaseBar:
    """One tqdm per phase of a multi-phase job, on an interactive stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None
        self.phase = None

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if p.phase != self.phase:
            self.close()
            self.phase = p.phase
            self.bar = tqdm(total=p.total, desc=p.phase, file=sys.stderr, dynamic_ncols=True)
        self.bar.update(p.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _export_xmp(args, lib) -> int:
    from sqlalchemy import select

    from clipdesk import commands
    from clipdesk.captions.store import best_captions
    from clipdesk.labels.xmp import SidecarConflict, write_sidecar
    from clipdesk.store.models import Photo

    wanted = [_photo_id(lib, ref) for ref in args.photos] or None
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
    commands._emit(args, {"written": written, "skipped": skipped}, human)  # noqa: SLF001
    return 0


def cmd_eval_captions(args) -> int:
    from pathlib import Path

    from clipdesk import commands
    from clipdesk.captions.eval import evaluate, find_data, format_report, load_set

    lib = commands._library(args)  # noqa: SLF001
    evalset = load_set(Path(args.data) if args.data else find_data(), args.limit)
    engine = commands._engine(args, lib)  # noqa: SLF001
    captioner = _captioner(args, lib, engine)
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(evalset.files), unit="photo", desc="captioning", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    try:
        result = evaluate(captioner, engine, evalset, n=max(1, args.candidates), meteor=not args.no_meteor,
                          progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if args.backend == "decoder":
        from clipdesk.captions.textdata import load_split
        from clipdesk.captions.train import evaluate_text_reconstruction

        held = load_split().held_out_captions(args.held_out)
        result["text_reconstruction"] = evaluate_text_reconstruction(captioner.decoder, engine, held)
    result["backend"] = args.backend
    if engine.spec.random_init or "random" in captioner.model_key:
        result["warning"] = "test-only random model: the scores say nothing about caption quality"
    human = format_report(result)
    if "warning" in result:
        human.insert(0, f"({result['warning']})")
    commands._emit(args, result, human)  # noqa: SLF001
    return 0
