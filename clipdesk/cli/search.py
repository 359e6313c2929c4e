"""``clipdesk search`` and ``clipdesk similar``, including ``search --label NAME``.

Their parsers are built from option tables (``QUERY_TABLES``), which
``options.query_argv`` reads to let ``search beach -people`` through.
"""

from __future__ import annotations

import os

from clipdesk.cli.options import HELP, OptionTable, global_options, iso_date, option, positive_int
from clipdesk.cli.support import emit, engine, library, require_indexed

RESULT_OPTIONS = [
    option("-k", "--top", type=positive_int, default=20, help="number of results (default 20)"),
    option("--folder", help="only photos under this folder"),
    option("--from", dest="date_from", type=iso_date, help="taken on or after YYYY-MM-DD"),
    option("--to", dest="date_to", type=iso_date, help="taken on or before YYYY-MM-DD"),
    option("--type", dest="types", default="", help="file types, e.g. jpeg,png,heic"),
    option("--min-score", type=float, help="fixed similarity cut-off instead of the automatic one"),
    option("--all", action="store_true", help="list the top results even when they are not good matches"),
    option("--sort", choices=("relevance", "date"), default="relevance",
           help="order of the results: relevance (default) or date taken, newest first; the same photos either way"),
    option("--not", dest="negatives", action="append", default=[], metavar="TERM",
           help="leave out photos like TERM (the same as -TERM in the query)"),
]

QUERY_TABLES = {
    "search": OptionTable([
        HELP, *global_options(after_command=True),
        option("--image", action="append", default=[], metavar="FILE_OR_ID", help="add an image to the query"),
        *RESULT_OPTIONS,
        option("--label", metavar="NAME", help="only photos carrying this label (not rejected)"),
    ]),
    "similar": OptionTable([
        HELP, *global_options(after_command=True),
        option("--text", default="", help="text to combine with the image, e.g. 'at night' or '-people'"),
        *RESULT_OPTIONS,
    ]),
}


def add_parsers(sub) -> None:
    se = sub.add_parser("search", help="search by text (and optionally images)")
    se.add_argument("text", nargs="*", help="query: words, -negative, +\"phrase\", term:weight")
    QUERY_TABLES["search"].add_to(se).set_defaults(func=cmd_search)
    si = sub.add_parser("similar", help="photos similar to a file or a library photo id")
    si.add_argument("ref", metavar="FILE_OR_ID")
    si.add_argument("words", nargs="*", metavar="TEXT", help="text to combine with the image (same as --text)")
    QUERY_TABLES["similar"].add_to(si).set_defaults(func=cmd_similar)


def cmd_search(args) -> int:
    from clipdesk.errors import QueryError
    from clipdesk.search import parse_text_query

    text = query_text(args.text, args.negatives)
    if args.label and not text and not args.image:
        return _list_labelled(args)
    if not text and not args.image:
        raise QueryError("Say what to search for, e.g. clipdesk search beach -people")
    terms = parse_text_query(text, require_positive=not args.image) if text else []
    searcher, encoder = _searcher(args)
    terms += [_image_term(searcher, ref) for ref in args.image]
    ids = labelled_photo_ids(searcher.library, args.label)[1] if args.label else None
    return _run_query(args, searcher, encoder, terms, " ".join([text, *args.image]).strip(), photo_ids=ids)


def cmd_similar(args) -> int:
    from clipdesk.search import parse_text_query

    text = query_text([*args.words, args.text], args.negatives)
    extra = parse_text_query(text, require_positive=False) if text else []  # the image is the positive
    searcher, encoder = _searcher(args)
    terms = [_image_term(searcher, args.ref), *extra]
    return _run_query(args, searcher, encoder, terms, f"{args.ref} {text}".strip())


def query_text(words: list[str], negatives: list[str]) -> str:
    """Query words plus ``--not`` terms (``search beach -people`` arrives as both)."""
    import shlex

    def negative(term: str) -> str:
        term = term.lstrip("-")
        # '-"red car"' keeps the user's own quotes; -red car (the shell ate them) gets quoted here.
        return "-" + (term if term[:1] in "\"'" else shlex.quote(term))

    return " ".join([*words, *(negative(n) for n in negatives if n.strip("- "))]).strip()


def _searcher(args):
    from clipdesk.config import CoreConfig
    from clipdesk.search import Searcher

    lib = library(args)
    encoder = engine(args, lib, tuned=True)
    require_indexed(args, lib, encoder)
    return Searcher(lib, encoder, CoreConfig().hnsw_min_size, cutoff=not encoder.spec.random_init), encoder


def _filters(args):
    from clipdesk.search import Filters

    types = tuple(t.strip() for t in args.types.split(",") if t.strip())
    return Filters(folder=args.folder, date_from=args.date_from, date_to=args.date_to, types=types)


def _image_term(searcher, ref: str, weight: float = 1.0):
    from clipdesk.errors import QueryError
    from clipdesk.search import Term
    from clipdesk.store.queries import find_photo

    photo_id = find_photo(searcher.library, ref)
    if photo_id is not None:
        return Term("photo", photo_id, weight)
    if ref.isdigit() and not os.path.exists(ref):
        raise QueryError(f"No photo with id {ref} in this library.")
    if not os.path.isfile(ref):
        raise QueryError(f"No such image file: {ref}")
    return Term("file", os.path.abspath(ref), weight)


def _run_query(args, searcher, encoder, terms, query: str, photo_ids=None) -> int:
    """``photo_ids``: restrict the search to these photos (e.g. those with a label)."""
    from dataclasses import replace

    from clipdesk.errors import QueryError
    from clipdesk.imageio import ImageReadError

    filters = _filters(args)
    if photo_ids is not None:
        filters = replace(filters, photo_ids=frozenset(int(i) for i in photo_ids))
    try:
        result = searcher.search(terms, k=args.top, filters=filters, min_score=args.min_score, show_all=args.all,
                                 sort=args.sort)
    except (ImageReadError, OSError) as exc:
        raise QueryError(f"Cannot read the query image: {exc}") from None
    data = {
        "query": query,
        "model": encoder.spec.name,
        "mode": result.mode,
        "considered": result.considered,
        "no_good_match": result.no_good_match,
        "sort": args.sort,
        "results": [{"id": h.photo_id, "path": h.path, "score": round(h.score, 4), "relevant": h.relevant,
                     "rank_score": round(h.fused, 6), "taken_at": h.taken_at.isoformat() if h.taken_at else None,
                     "why": h.why} for h in result.hits],
    }
    human = [f"{h.score:6.3f}  {h.path}" + ("" if h.relevant else "  (weak match)") + _why_line(h.why)
             for h in result.hits]
    if encoder.spec.random_init:
        data["warning"] = "test-only random model: scores are meaningless and no relevance cut-off is applied"
        human.insert(0, f"(model {encoder.spec.label}; no relevance cut-off)")
    if result.no_good_match:
        human.append(f"No good matches for {query!r} among {result.considered} photos."
                     + ("" if args.all else " Use --all to list the closest anyway."))
    emit(args, data, human)
    return 0


def _why_line(why: list[dict]) -> str:
    """The keyword evidence in a few words (CLIP's score is already the first column)."""
    from clipdesk.search.explain import why_text

    text = why_text(why, with_clip=False)
    return f"  [{text}]" if text else ""


# -- search --label ---------------------------------------------------------------------


def labelled_photo_ids(lib, name: str):
    """The label's canonical name, its (non-rejected) photos (ids, ascending), and their scores."""
    import numpy as np
    from sqlalchemy import select

    from clipdesk.labels.vocab import load_vocabulary
    from clipdesk.store.models import Label, Photo

    label = load_vocabulary(lib.root).get(name)
    canonical = label.name if label else name.strip().lower()
    with lib.session() as s:
        rows = s.execute(
            select(Label.photo_id, Label.score).join(Photo, Photo.id == Label.photo_id)
            .where(Label.label == canonical, Label.status != "rejected", Photo.missing_since.is_(None))
        ).all()
    return canonical, np.asarray(sorted(r[0] for r in rows), np.int64), {r[0]: r[1] or 0.0 for r in rows}


def _list_labelled(args) -> int:
    """``search --label NAME`` with no query: the label's photos, best score first."""
    from dataclasses import replace

    from sqlalchemy import select

    from clipdesk.search import filter_photo_ids
    from clipdesk.store.models import Photo

    lib = library(args)
    canonical, ids, scores = labelled_photo_ids(lib, args.label)
    passing = filter_photo_ids(lib, replace(_filters(args), photo_ids=frozenset(ids.tolist())))
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
    emit(args, data, human)
    return 0
