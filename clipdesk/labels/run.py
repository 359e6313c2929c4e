"""Label the whole library in the background: resumable, incremental, and
respectful of what the user decided.

Progress lives in ``Meta`` under ``labels_state:<model key>``: the hash of
the vocabulary and scoring settings, the photo ids done (as ranges) and the
newest embedding time seen, so a re-embedded photo is labelled again. A
changed vocabulary starts over; stale auto proposals are then removed.
Rows the user touched (``source="user"``, ``accepted``, ``rejected``) are
never changed, and a rejected label is never proposed again.

A label with at least ``MIN_FEEDBACK`` accepted and as many rejected photos
is decided by a ``LabelProbe`` fitted on their stored vectors. The state
keeps a digest of each probe's examples: when the user's answers for a label
change, the next run re-decides that label on every photo already done
(vectors only, no re-embedding), and leaves the other labels alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select

from clipdesk.crashpoints import crash_point
from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress
from clipdesk.labels.feedback import LabelProbe
from clipdesk.labels.scoring import DEFAULT_MARGIN, DEFAULT_Z, DescriptorBank, LabelStats, TextEncoder
from clipdesk.labels.vocab import Vocabulary
from clipdesk.store.db import Library
from clipdesk.store.models import Embedding, Label, Meta, Photo
from clipdesk.store.vectors import VectorSet, load_vectors

STATE_PREFIX = "labels_state:"
# Accepted and rejected photos a label needs (each) before its probe replaces the descriptors.
MIN_FEEDBACK = 3


@dataclass
class LabelReport:
    photos: int = 0  # present photos embedded with the model
    todo: int = 0  # of which needed labelling this run
    labelled: int = 0  # photos labelled this run
    with_labels: int = 0  # of those, photos where at least one label fired
    proposed: int = 0  # auto rows added or refreshed
    removed: int = 0  # stale auto proposals deleted
    kept: int = 0  # fired labels left alone because the user decided them
    learned: list[str] = field(default_factory=list)  # labels decided by a probe
    relearned: list[str] = field(default_factory=list)  # of those (or dropped), re-decided on every photo
    cancelled: bool = False


@dataclass
class Labeller:
    """Everything needed to label the library's photos, built once per run."""

    vectors: VectorSet
    bank: DescriptorBank
    stats: LabelStats | None
    probes: dict[str, LabelProbe]
    digests: dict[str, str]  # label -> digest of its feedback examples

    def score(self, rows):
        return self.bank.score(self.vectors.matrix[rows], self.stats, self.probes)


def prepare(library: Library, engine: TextEncoder, vocabulary: Vocabulary,
            margin: float = DEFAULT_MARGIN, z: float = DEFAULT_Z) -> Labeller:
    vectors = load_vectors(library, engine.key)
    bank = DescriptorBank(engine, vocabulary, cache_dir(library), margin=margin, z=z)
    stats = bank.calibrate(vectors.matrix) if len(vectors) else None
    probes, digests = fit_probes(library, bank, vectors)
    return Labeller(vectors, bank, stats, probes, digests)


def fit_probes(library: Library, bank: DescriptorBank, vectors: VectorSet) -> tuple[dict, dict]:
    """A probe per label with enough feedback on photos embedded with this model."""
    row_of = {pid: i for i, pid in enumerate(vectors.ids.tolist())}
    with library.session() as s:
        rows = s.execute(select(Label.label, Label.photo_id, Label.status)
                         .where(Label.status.in_(("accepted", "rejected")))).all()
    examples: dict[str, tuple[list[int], list[int]]] = {}
    for name, pid, status in rows:
        if pid in row_of and name in bank.names:
            examples.setdefault(name, ([], []))[status == "rejected"].append(pid)
    probes, digests = {}, {}
    for name, (pos, neg) in sorted(examples.items()):
        if len(pos) < MIN_FEEDBACK or len(neg) < MIN_FEEDBACK:
            continue
        pos, neg = sorted(pos), sorted(neg)
        probes[name] = LabelProbe(bank.prior(name)).fit(vectors.matrix[[row_of[p] for p in pos]],
                                                        vectors.matrix[[row_of[p] for p in neg]])
        digests[name] = hashlib.sha256(json.dumps([pos, neg]).encode()).hexdigest()[:16]
    return probes, digests


def cache_dir(library: Library) -> Path:
    return library.root / "cache"


def run_hash(bank: DescriptorBank) -> str:
    content = f"{bank.vocab_hash}\0{bank.margin!r}\0{bank.z!r}"
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def label_library(library: Library, engine: TextEncoder, vocabulary: Vocabulary,
                  progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
                  batch: int = 512, margin: float = DEFAULT_MARGIN, z: float = DEFAULT_Z) -> LabelReport:
    """Propose labels for every present photo embedded with ``engine.key``."""
    cancel = cancel or CancelToken()
    report = LabelReport()
    lab = prepare(library, engine, vocabulary, margin, z)
    vectors = lab.vectors
    report.photos = len(vectors)
    report.learned = sorted(lab.probes)
    state = _start(library, engine.key, run_hash(lab.bank))
    done = state["done"]
    old = state.get("probes", {})
    report.relearned = sorted(n for n in set(old) | set(lab.digests) if old.get(n) != lab.digests.get(n))
    all_ids = vectors.ids.tolist()
    todo_rows = [i for i, pid in enumerate(all_ids) if pid not in done]
    # Photos done before whose taught labels must be re-decided: the second pass.
    redo_rows = [i for i, pid in enumerate(all_ids) if pid in done] if report.relearned else []
    report.todo = len(todo_rows)
    total = len(todo_rows) + len(redo_rows)
    progress(Progress("labelling", 0, total))
    passes = ((todo_rows, None), (redo_rows, set(report.relearned)))
    finished = 0
    for rows_list, only in passes:
        for start in range(0, len(rows_list), batch):
            if cancel.checkpoint():
                report.cancelled = True
                return report  # the probes' digests are not saved: the next run re-decides them
            rows = np.asarray(rows_list[start:start + batch])
            ids = vectors.ids[rows].tolist()
            scores = lab.score(rows)  # the model's side, before the write (which may run on another thread)
            state["done"] = done | set(ids)

            def write(s, ids=ids, scores=scores, only=only) -> None:
                _write_batch(s, ids, scores, engine.key, report, only)
                s.merge(Meta(key=STATE_PREFIX + engine.key, value=_dump(state)))
                s.flush()  # labels and state reach SQLite uncommitted: what a crash here must undo
                crash_point("labels.batch-written")

            library.write(write)
            done.update(ids)
            crash_point("labels.batch-committed")
            report.labelled += len(ids) if only is None else 0
            finished += len(ids)
            progress(Progress("labelling", finished, total))
    if state.get("probes", {}) != lab.digests:
        state["probes"] = lab.digests
        library.set_meta(STATE_PREFIX + engine.key, _dump(state))
    return report


def _write_batch(s, ids: list[int], scores, model_key: str, report: LabelReport,
                 only: set[str] | None = None) -> None:
    """Write the fired labels of a batch; ``only``: touch just these labels."""
    existing: dict[int, dict[str, Label]] = {}
    for row in s.scalars(select(Label).where(Label.photo_id.in_(ids))):
        existing.setdefault(row.photo_id, {})[row.label] = row
    for i, pid in enumerate(ids):
        hits = {h.label: h for h in scores.hits(i) if only is None or h.label in only}
        report.with_labels += bool(hits) if only is None else 0
        mine = {n: r for n, r in existing.get(pid, {}).items() if only is None or n in only}
        for name, row in mine.items():
            if _user_decided(row):
                report.kept += name in hits
                continue
            hit = hits.get(name)
            if hit is None:
                s.delete(row)
                report.removed += 1
            else:
                row.score, row.evidence, row.model_key = hit.score, hit.evidence_json(), model_key
                report.proposed += 1
        for name, hit in hits.items():
            if name not in mine:
                s.add(Label(photo_id=pid, label=name, score=hit.score, source="auto", status="proposed",
                            model_key=model_key, evidence=hit.evidence_json()))
                report.proposed += 1


def _user_decided(row: Label) -> bool:
    return row.source == "user" or row.status in ("accepted", "rejected")


# -- the resumable state ----------------------------------------------------------


def _start(library: Library, model_key: str, digest: str) -> dict:
    """Load the state; forget photos re-embedded since, or everything when the vocabulary changed."""
    key = STATE_PREFIX + model_key
    return library.write(lambda s: _start_in(s, key, model_key, digest))


def _start_in(s, key: str, model_key: str, digest: str) -> dict:
    """One transaction: read the state, bring it up to date, write it back."""
    raw = s.scalar(select(Meta.value).where(Meta.key == key))
    state = _load(raw)
    newest = s.scalar(select(func.max(Embedding.created_at)).where(Embedding.model_key == model_key))
    newest = newest.isoformat() if newest else ""
    if state.get("hash") != digest:
        state = {"hash": digest, "done": set(), "stamp": ""}
    elif state.get("stamp") and state["done"]:
        changed = s.scalars(
            select(Embedding.photo_id).where(Embedding.model_key == model_key)
            .where(Embedding.created_at > _parse_time(state["stamp"]))
        ).all()
        state["done"] -= set(changed)
    state["stamp"] = newest
    s.merge(Meta(key=key, value=_dump(state)))
    return state


def forget_progress(library: Library, model_key: str) -> None:
    """Make the next run label every photo again."""
    library.write(lambda s: s.execute(delete(Meta).where(Meta.key == STATE_PREFIX + model_key)))


def label_counts(library: Library) -> list[dict]:
    """Per label: photos proposed, accepted and rejected (present photos only)."""
    with library.session() as s:
        rows = s.execute(
            select(Label.label, Label.status, func.count())
            .join(Photo, Photo.id == Label.photo_id).where(Photo.missing_since.is_(None))
            .group_by(Label.label, Label.status)
        ).all()
    out: dict[str, dict] = {}
    for name, status, n in rows:
        entry = out.setdefault(name, {"label": name, "proposed": 0, "accepted": 0, "rejected": 0})
        entry[status] = entry.get(status, 0) + n
    for entry in out.values():
        entry["photos"] = entry["proposed"] + entry["accepted"]
    return sorted(out.values(), key=lambda e: (-e["photos"], e["label"]))


def _parse_time(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)


def _load(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        data["done"] = {i for lo, hi in data.get("done", []) for i in range(lo, hi + 1)}
        return data
    except (ValueError, TypeError, KeyError):
        return {}


def _dump(state: dict) -> str:
    """Photo ids as ``[lo, hi]`` ranges: a library's ids are mostly contiguous."""
    ranges: list[list[int]] = []
    for i in sorted(state["done"]):
        if ranges and ranges[-1][1] == i - 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return json.dumps({**state, "done": ranges})
