"""Helpers to fill a library with photos whose vectors the test constructs."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from clipdesk.store.models import Embedding, Photo, utcnow


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def add_photos(library, model_key: str, items: list[dict]) -> list[int]:
    """Insert photos; each item: path, vector, and optional format/taken_at/missing."""
    ids = []
    with library.session() as s, s.begin():
        for i, item in enumerate(items):
            vec = unit(item["vector"])
            photo = Photo(
                path=item["path"], size=100 + i, mtime_ns=i, content_hash=f"h{i:08d}{item['path'][-8:]}",
                format=item.get("format", "JPEG"), width=10, height=10, frames=1,
                taken_at=item.get("taken_at"), added_at=utcnow(),
                missing_since=datetime(2020, 1, 1) if item.get("missing") else None,
            )
            s.add(photo)
            s.flush()
            s.add(Embedding(photo_id=photo.id, model_key=model_key, dim=len(vec), vector=vec.astype("<f2").tobytes(),
                            content_hash=photo.content_hash, created_at=utcnow()))
            ids.append(photo.id)
    return ids


class FakeEncoder:
    """An encoder whose outputs the test decides: known answers for search."""

    def __init__(self, key: str, texts: dict[str, np.ndarray], files: dict[str, np.ndarray] | None = None,
                 default: np.ndarray | None = None) -> None:
        self.key = key
        self.texts = {k: unit(v) for k, v in texts.items()}
        self.files = {k: unit(v) for k, v in (files or {}).items()}
        self.default = default
        self.text_calls: list[str] = []

    def encode_text(self, texts):
        self.text_calls.extend(texts)
        out = []
        for t in texts:
            if t in self.texts:
                out.append(self.texts[t])
            elif self.default is not None:
                out.append(unit(self.default))
            else:
                raise KeyError(t)
        return np.stack(out)

    def encode_files(self, paths):
        return np.stack([self.files[str(p)] for p in paths])
