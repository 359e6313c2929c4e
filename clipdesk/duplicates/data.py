"""What the duplicate finder knows of each photo, as arrays: loaded from the library, or built (benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from clipdesk.duplicates.hashes import N_VARIANTS, to_unsigned, unpack_variants
from clipdesk.duplicates.keeper import PhotoFacts
from clipdesk.store.db import Library
from clipdesk.store.models import Photo, PhotoHash
from clipdesk.store.vectors import load_vectors

_NO_VARIANTS = np.zeros(N_VARIANTS, np.uint64)


@dataclass
class DupData:
    """One row per photo. ``vectors`` rows are unit vectors (zeros where ``has_vector`` is False)."""

    ids: np.ndarray  # int64
    content: list[str | None]
    pixel: list[str | None]
    phash: np.ndarray  # uint64
    variants: np.ndarray  # n x N_VARIANTS uint64, identity first (benchmarks may build fewer)
    has_hash: np.ndarray  # bool
    taken: np.ndarray  # float64 seconds since the epoch, NaN without a capture time
    camera: list[str | None]
    vectors: np.ndarray | None = None  # float32 n x d
    has_vector: np.ndarray | None = None
    facts: list[PhotoFacts] | None = None  # for the keeper; None in benchmarks

    def __len__(self) -> int:
        return len(self.ids)


def load_data(library: Library, model_key: str | None = None) -> DupData:
    """Present photos, with their hashes (where computed for the current content) and ``model_key``'s vectors."""
    # Plain columns, not ORM objects: a tenth of the time at 100k photos.
    stmt = (select(Photo.id, Photo.path, Photo.width, Photo.height, Photo.size, Photo.format, Photo.mtime_ns,
                   Photo.taken_at, Photo.camera_make, Photo.camera_model, Photo.gps_lat, Photo.content_hash,
                   PhotoHash.content_hash.label("hashed"), PhotoHash.pixel_hash, PhotoHash.phash,
                   PhotoHash.phash_variants, PhotoHash.error)
            .outerjoin(PhotoHash, PhotoHash.photo_id == Photo.id)
            .where(Photo.missing_since.is_(None)).order_by(Photo.id))
    with library.session() as s:
        rows = s.execute(stmt).all()
    n = len(rows)
    phash, variants = np.zeros(n, np.uint64), np.zeros((n, N_VARIANTS), np.uint64)
    has_hash, taken = np.zeros(n, bool), np.full(n, np.nan)
    content, pixel, camera, facts = [], [], [], []
    for i, p in enumerate(rows):
        current = p.hashed == p.content_hash and p.error is None
        content.append(p.content_hash)
        pixel.append(p.pixel_hash if current else None)
        if current and p.phash is not None:
            phash[i] = to_unsigned(p.phash)
            stored = unpack_variants(p.phash_variants) if p.phash_variants else _NO_VARIANTS
            variants[i, :len(stored)] = stored[:N_VARIANTS]
            variants[i, len(stored):] = phash[i]  # a row from fewer variants: the identity stands in
            has_hash[i] = True
        if p.taken_at is not None:
            taken[i] = p.taken_at.timestamp()
        cam = " ".join(x for x in (p.camera_make, p.camera_model) if x) or None
        camera.append(cam)
        facts.append(PhotoFacts(p.id, p.path, p.width, p.height, p.size, p.format, p.mtime_ns, p.taken_at,
                                cam is not None, p.gps_lat is not None))
    ids = np.array([p.id for p in rows], np.int64)
    data = DupData(ids, content, pixel, phash, variants, has_hash, taken, camera, facts=facts)
    if model_key is not None:
        vs = load_vectors(library, model_key)
        if len(vs):
            data.vectors = np.zeros((n, vs.matrix.shape[1]), np.float32)
            data.has_vector = np.isin(ids, vs.ids)
            data.vectors[data.has_vector] = vs.matrix[np.searchsorted(vs.ids, ids[data.has_vector])]
    return data
