"""What a tuned library stores: which identity is active, the heads' files, the tuned vectors.

Tuned vectors are ordinary ``Embedding`` rows under the tuned identity
(``heads.tuned_key``), one per photo like any model's; the base rows are
never touched, so reverting is deleting. Meta keys (JSON values):

* ``tuning_active``: the identity searching uses (``{"key", "digest", "base_key"}``);
  absent, the base model's vectors are searched.
* ``tuning_pending``: heads that passed the guard and whose vectors are still
  being written (a run stopped there continues from it).
* ``tuning_last``: the last run's outcome and figures, for ``tune --status``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import aliased

from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress
from clipdesk.store.db import Library
from clipdesk.store.models import Embedding, Meta, utcnow
from clipdesk.tuning.heads import TUNED_MARK, Heads

ACTIVE_META = "tuning_active"
PENDING_META = "tuning_pending"
LAST_META = "tuning_last"
WRITE_BATCH = 1000


def heads_dir(library: Library) -> Path:
    return library.root / "models" / "tuning"


def heads_path(library: Library, digest: str) -> Path:
    return heads_dir(library) / f"{digest}.safetensors"


def get_state(library: Library, key: str) -> dict | None:
    raw = library.get_meta(key)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None  # a damaged value reads as unset: the base is searched
    return value if isinstance(value, dict) else None


def set_state(library: Library, key: str, value: dict | None) -> None:
    """Set (or with None, remove) one of the meta keys above."""
    if value is None:
        library.write(lambda s: s.execute(delete(Meta).where(Meta.key == key)))
    else:
        library.set_meta(key, json.dumps(value, default=str))


def state_of(heads: Heads) -> dict:
    return {"key": heads.tuned_key, "digest": heads.digest, "base_key": heads.base_key}


def count_vectors(library: Library, key: str) -> int:
    with library.session() as s:
        return s.scalar(select(func.count()).select_from(Embedding).where(Embedding.model_key == key)) or 0


def _stale(heads: Heads):
    """Base rows whose tuned row is missing or was made from other bytes (the photo changed)."""
    base, tuned = aliased(Embedding), aliased(Embedding)
    joined = and_(tuned.photo_id == base.photo_id, tuned.model_key == heads.tuned_key)
    condition = and_(base.model_key == heads.base_key,
                     or_(tuned.photo_id.is_(None), tuned.content_hash != base.content_hash))
    return base, joined, tuned, condition


def count_stale(library: Library, heads: Heads) -> int:
    base, joined, tuned, condition = _stale(heads)
    with library.session() as s:
        return s.scalar(select(func.count()).select_from(base).outerjoin(tuned, joined).where(condition)) or 0


def write_tuned(library: Library, heads: Heads, progress: ProgressCallback = no_progress,
                cancel: CancelToken | None = None, batch: int | None = None) -> tuple[int, bool]:
    """Derive tuned vectors from the stored base vectors (no re-encoding), in batches; resumable.

    Returns (rows written, cancelled). Each batch is one ``library.write``
    transaction, so a stop anywhere leaves whole batches; the next call
    writes only what is still missing.
    """
    batch = batch or WRITE_BATCH
    base, joined, tuned, condition = _stale(heads)
    total = count_stale(library, heads)
    done, last = 0, -1
    if total:
        progress(Progress("writing tuned vectors", 0, total))
    while True:
        with library.session() as s:
            rows = s.execute(select(base.photo_id, base.vector, base.dim, base.content_hash)
                             .outerjoin(tuned, joined).where(condition, base.photo_id > last)
                             .order_by(base.photo_id).limit(batch)).all()
        if not rows:
            return done, False
        dim = rows[0][2]
        vectors = np.frombuffer(b"".join(r[1] for r in rows), "<f2").reshape(len(rows), dim).astype(np.float32)
        blobs = heads.image.apply(vectors).astype("<f2")
        now = utcnow()
        values = [{"photo_id": r[0], "model_key": heads.tuned_key, "dim": dim, "vector": blob.tobytes(),
                   "content_hash": r[3], "created_at": now} for r, blob in zip(rows, blobs, strict=True)]
        stmt = insert(Embedding).values(values)
        stmt = stmt.on_conflict_do_update(index_elements=["photo_id", "model_key"], set_={
            "dim": stmt.excluded.dim, "vector": stmt.excluded.vector, "content_hash": stmt.excluded.content_hash,
            "created_at": stmt.excluded.created_at})
        if not library.write(lambda s, stmt=stmt: _still_wanted(s, heads) and s.execute(stmt) is not None):
            return done, True  # reverted (or replaced) meanwhile: an identity nobody searches gets no more rows
        done, last = done + len(rows), rows[-1][0]
        progress(Progress("writing tuned vectors", done, max(total, done)))
        if cancel is not None and cancel.checkpoint():
            return done, True


def _still_wanted(s, heads: Heads) -> bool:
    """Inside the write: is ``heads``' identity still the active or the pending one?"""
    for key in (ACTIVE_META, PENDING_META):
        raw = s.get(Meta, key)
        try:
            if raw is not None and json.loads(raw.value).get("key") == heads.tuned_key:
                return True
        except (ValueError, AttributeError):
            continue
    return False


def delete_identity(library: Library, key: str) -> int:
    """Remove every vector of one tuned identity and its saved search index; returns the rows removed."""
    removed = library.write(lambda s: s.execute(delete(Embedding).where(Embedding.model_key == key)).rowcount)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", key)  # how store.vectors names an identity's HNSW files
    for suffix in (".hnsw", ".json"):
        (library.vectors_dir / safe).with_suffix(suffix).unlink(missing_ok=True)
    return removed or 0


def delete_heads_files(library: Library, digest: str) -> None:
    path = heads_path(library, digest)
    for p in (path, path.with_suffix(".json")):
        p.unlink(missing_ok=True)


def tuned_identities(library: Library, base_key: str | None = None) -> list[str]:
    """Tuned identities that have vectors in the library (of one base, or all)."""
    with library.session() as s:
        keys = s.scalars(select(Embedding.model_key).where(Embedding.model_key.contains(TUNED_MARK)).distinct())
        return [k for k in keys if base_key is None or k.startswith(base_key + TUNED_MARK)]
