"""Switching a library to checked heads, back to its base, and saying which it searches.

``finish`` writes the tuned vectors (resumable) and then makes them the
active identity in one transaction; ``revert`` removes every trace of
tuning, so searches give exactly the base results again; ``tuning_status``
reports both and the last run's figures.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import delete, func, select

from clipdesk.store.db import Library
from clipdesk.store.models import Embedding, Meta, Photo, utcnow
from clipdesk.tuning import state
from clipdesk.tuning.heads import Heads, load_heads, read_sidecar


def finish(library: Library, heads: Heads, report, progress, cancel):
    """Write ``heads``' vectors, then search them and drop older tunings; ``report``: a ``run.TuneReport``."""
    started = time.perf_counter()
    report.tuned_key = heads.tuned_key
    report.written, report.cancelled = state.write_tuned(library, heads, progress, cancel)
    report.seconds["writing"] = round(time.perf_counter() - started, 2)
    if report.cancelled:
        return report

    def switch(s) -> None:  # the active identity changes as the pending state goes: never one without the other
        s.merge(Meta(key=state.ACTIVE_META, value=json.dumps(state.state_of(heads))))
        s.execute(delete(Meta).where(Meta.key == state.PENDING_META))

    library.write(switch)
    report.kept = True
    for key in state.tuned_identities(library):
        if key != heads.tuned_key:
            state.delete_identity(library, key)
    for path in state.heads_dir(library).glob("*.safetensors"):
        if path.stem != heads.digest:
            state.delete_heads_files(library, path.stem)
    if report.resumed:
        report.reasons.append("continued writing the tuned vectors of a run that stopped while writing them")
    state.set_state(library, state.LAST_META, outcome(report, "kept"))
    return report


def outcome(report, what: str) -> dict:
    """What ``tune --status`` shows of the last run."""
    return {"outcome": what, "when": utcnow(), "tuned_key": report.tuned_key, "reasons": report.reasons,
            "before": report.before, "after": report.after, "sizes": report.sizes}


def pending_heads(library: Library, base_key: str) -> Heads | None:
    """Checked heads whose writing stopped, if they belong to this base; any other pending tuning is cleared."""
    pending = state.get_state(library, state.PENDING_META)
    if not pending:
        return None
    try:
        heads = load_heads(state.heads_path(library, str(pending.get("digest"))))
    except (OSError, ValueError):
        heads = None
    if heads is not None and heads.base_key == base_key and heads.tuned_key == pending.get("key"):
        return heads
    state.set_state(library, state.PENDING_META, None)
    if pending.get("key") and pending.get("key") != (state.get_state(library, state.ACTIVE_META) or {}).get("key"):
        state.delete_identity(library, str(pending["key"]))
        state.delete_heads_files(library, str(pending.get("digest")))
    return None


def revert(library: Library) -> dict:
    """Back to the base vectors, exactly: every tuned vector, head file and tuning state removed.

    Returns counts, and how many photos have no base vector (indexed while
    the tuning was on: ``clipdesk index`` embeds them again).
    """
    active = state.get_state(library, state.ACTIVE_META) or state.get_state(library, state.PENDING_META) or {}
    for key in (state.ACTIVE_META, state.PENDING_META):
        state.set_state(library, key, None)  # first: a stop below still leaves the base searched
    removed = sum(state.delete_identity(library, key) for key in state.tuned_identities(library))
    for path in state.heads_dir(library).glob("*.safetensors"):
        state.delete_heads_files(library, path.stem)
    base_key = active.get("base_key")
    missing = _photos_without(library, base_key) if base_key else 0
    state.set_state(library, state.LAST_META, {"outcome": "reverted", "when": utcnow(), "removed_vectors": removed})
    return {"reverted": bool(active), "base_key": base_key, "removed_vectors": removed, "without_base_vectors": missing}


def tuning_status(library: Library) -> dict:
    """What is searched, what is pending, and the last run's figures."""
    active, pending = state.get_state(library, state.ACTIVE_META), state.get_state(library, state.PENDING_META)
    out: dict = {"active": active is not None, "pending": pending is not None,
                 "last": state.get_state(library, state.LAST_META)}
    if active:
        path = state.heads_path(library, active["digest"])
        out.update(active)
        out["tuned_vectors"] = state.count_vectors(library, active["key"])
        out["base_vectors"] = state.count_vectors(library, active["base_key"])
        out["heads_file"] = str(path) if path.is_file() else None
        out["sidecar"] = {k: v for k, v in read_sidecar(path).items() if k in ("created", "sizes", "before", "after")}
        try:
            out["stale"] = state.count_stale(library, load_heads(path))
        except (OSError, ValueError):
            out["stale"] = None
    return out


def _photos_without(library: Library, key: str) -> int:
    """Present photos with no vector under ``key``."""
    with library.session() as s:
        have = select(Embedding.photo_id).where(Embedding.model_key == key)
        return s.scalar(select(func.count()).select_from(Photo)
                        .where(Photo.missing_since.is_(None), Photo.id.not_in(have))) or 0


def refresh(library: Library, base, progress=None, cancel=None) -> int:
    """Tuned vectors for photos indexed (or changed) since the tuning: derived from their new base vectors.

    Indexing always stores base vectors (so ``revert`` stays exact); this
    brings the active identity up to date after it, in numpy, without the
    model. Returns the rows written (0 when no tuning of ``base``'s space is
    active).
    """
    from clipdesk.tuning.active import active_heads

    heads = active_heads(library, base.key)
    if heads is None:
        return 0
    kwargs = {} if progress is None else {"progress": progress}
    written, _cancelled = state.write_tuned(library, heads, cancel=cancel, **kwargs)
    return written
