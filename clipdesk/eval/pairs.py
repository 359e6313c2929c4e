"""``--pairs FILE``: the user's own near-duplicates, each path finding its partner among the library's photos.

The file has one pair per line, two tab-separated paths showing the same
photo or scene. Relative paths are relative to the file's folder (so a pairs
file travels with its photos); blank lines and ``#`` comments are ignored;
any other line that cannot be used is skipped and reported with its reason.
Every path of a kept pair is a query; its relevant candidates are its
partners (every line it shares with another path); the candidates are all
the library's photos with a vector for the current model, plus the pair
photos outside the library, encoded on the fly.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from clipdesk.eval.encode import Embedder
from clipdesk.eval.sections import rank_metrics
from clipdesk.store.db import Library
from clipdesk.store.models import Photo
from clipdesk.store.vectors import load_vectors


@dataclass
class PairsFile:
    """The usable pairs (absolute paths, in file order) and the skipped lines: ``{"line": n, "reason": ...}``."""

    path: Path
    pairs: list[tuple[str, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line number of each pair
    skipped: list[dict] = field(default_factory=list)


def parse_pairs(path: Path) -> PairsFile:
    """Read a pairs file; raises OSError only when the file itself cannot be read."""
    out = PairsFile(path)
    seen: dict[frozenset[str], int] = {}
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 2 or not all(fields):
            out.skipped.append({"line": number, "reason": "expected two paths separated by one tab"})
            continue
        a, b = (_resolve(f, path.parent) for f in fields)
        reason = next((f"no such file: {p}" for p in (a, b) if not os.path.isfile(p)), None)
        if reason is None and a == b:
            reason = "the same file twice"
        if reason is None and frozenset((a, b)) in seen:
            reason = f"repeats line {seen[frozenset((a, b))]}"
        if reason is not None:
            out.skipped.append({"line": number, "reason": reason})
            continue
        seen[frozenset((a, b))] = number
        out.pairs.append((a, b))
        out.lines.append(number)
    return out


def _resolve(text: str, base: Path) -> str:
    # abspath, not resolve(): the library stores os.path.abspath of what was indexed (symlinks kept).
    p = Path(text).expanduser()
    return os.path.abspath(p if p.is_absolute() else base / p)


def pairs_section(library: Library, model_key: str, embedder: Embedder, parsed: PairsFile) -> dict:
    """mAP@100 and R@1 of every pair path finding its partner(s); see the module docstring."""
    stored = load_vectors(library, model_key)
    with library.session() as s:
        paths = dict(s.execute(select(Photo.id, Photo.path).where(Photo.id.in_(stored.ids.tolist()))).all()) \
            if len(stored) else {}
    row_of = {paths[int(pid)]: row for row, pid in enumerate(stored.ids)}
    wanted = list(dict.fromkeys(p for pair in parsed.pairs for p in pair))
    outside = [p for p in wanted if p not in row_of]
    encoded = embedder.embed(outside)
    failed = {p: reason for p, reason in encoded.errors}
    skipped = list(parsed.skipped)
    pairs = []
    for (a, b), number in zip(parsed.pairs, parsed.lines, strict=True):
        bad = next((p for p in (a, b) if p in failed), None)
        if bad is not None:
            skipped.append({"line": number, "reason": f"cannot read {bad}: {failed[bad]}"})
        else:
            pairs.append((a, b))
    skipped.sort(key=lambda d: d["line"])
    base = {"library_photos": len(stored), "skipped_lines": skipped}
    if not pairs:
        return {"skipped": f"no usable pairs in {parsed.path} ({len(skipped)} line(s) skipped)", **base}
    extra = encoded.vectors[encoded.ok]
    # Photos encoded on the fly become candidates after the library's own.
    for i, p in enumerate(p for p, good in zip(outside, encoded.ok, strict=True) if good):
        row_of[p] = len(stored) + i
    matrix = stored.matrix if len(stored) else np.zeros((0, extra.shape[1]), np.float32)
    candidates = np.concatenate([matrix, extra]) if len(extra) else matrix
    partners: dict[str, set[str]] = defaultdict(set)
    for a, b in pairs:
        partners[a].add(b)
        partners[b].add(a)
    queries = list(partners)
    q_rows = np.array([row_of[q] for q in queries])
    relevant = np.zeros((len(queries), len(candidates)), bool)
    for i, q in enumerate(queries):
        relevant[i, [row_of[p] for p in partners[q]]] = True
    exclude = np.zeros_like(relevant)
    exclude[np.arange(len(queries)), q_rows] = True
    m = rank_metrics(candidates[q_rows], candidates, lambda s: (relevant[s], exclude[s]), k=100)
    return {"n": len(pairs), "queries": len(queries), "candidates": len(candidates),
            "in_library": int(np.sum(q_rows < len(stored))), "encoded": int(encoded.ok.sum()),
            "mAP@100": m["mAP@100"], "R@1": m["R@1"], **base}
