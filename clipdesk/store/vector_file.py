"""A library's vectors for one model as a file beside the database: read in a fraction of the time SQLite takes.

Reading 100k vectors row by row out of SQLite takes ~1.8 s on 2 cores (13-16 s at 1M); the same vectors as one
fp16 array load at the speed of the disk cache. The file is derived data, like the search graph: ``KEY.vec.npy``
(fp16, one unit row per photo), ``KEY.vec-ids.npy`` (photo ids, ascending) and ``KEY.vec.json``, the manifest,
written last: the vectors generation they were read at (missing photos count, migration 0005), their shape, and
sampled digests (``derived.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from clipdesk.store.derived import atomic_write, let_go, model_files, sampled_digest

log = logging.getLogger(__name__)
FORMAT = 1
BLOCK = 65_536  # rows written per block


class VectorFile:
    def __init__(self, directory: Path, model_key: str) -> None:
        self.model_key = model_key
        self.data_path, self.ids_path, self.manifest_path = model_files(directory, model_key,
                                                                        ".vec.npy", ".vec-ids.npy", ".vec.json")

    def load(self, generation: int) -> tuple[np.ndarray, np.ndarray, str | None] | None:
        """(ids, fp16 matrix memory-mapped, the newest vector's write time) when the file holds exactly
        ``generation``; else None."""
        found = self.load_any()
        if found is None or found[3] != generation:
            return None
        return found[:3]

    def load_any(self) -> tuple[np.ndarray, np.ndarray, str | None, int] | None:
        """The intact file of whatever generation, with that generation: what a refresh starts from."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
            if (manifest.get("format") != FORMAT or manifest.get("model_key") != self.model_key
                    or manifest.get("data") != sampled_digest(self.data_path)
                    or manifest.get("ids") != sampled_digest(self.ids_path)):
                return None
            ids = np.load(self.ids_path, allow_pickle=False)
            matrix = np.load(self.data_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if matrix.dtype != np.float16 or matrix.ndim != 2 or len(matrix) != len(ids):
            return None
        return ids, matrix, manifest.get("as_of"), manifest.get("generation")

    def save(self, ids: np.ndarray, rows, generation: int, as_of: str | None = None, dim: int | None = None) -> bool:
        """Write the file for ``generation``; best effort (a read-only or full disk only costs the next open).

        ``rows``: the fp16 matrix, or a callable ``rows(start, stop)`` giving it in blocks (with ``dim``), which
        are written through a memory map and let go of one by one: a refresh at 1M photos never holds a second
        copy of the vectors in memory."""
        try:
            if callable(rows):
                write = lambda tmp: _save_blocks(tmp, len(ids), dim, rows)  # noqa: E731
            else:
                dim = int(rows.shape[1]) if rows.ndim == 2 else 0
                write = lambda tmp: _save(tmp, rows)  # noqa: E731
            self.data_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.data_path, write)
            atomic_write(self.ids_path, lambda tmp: _save(tmp, ids))
            manifest = {"format": FORMAT, "model_key": self.model_key, "generation": generation, "as_of": as_of,
                        "count": int(len(ids)), "dim": dim,
                        "data": sampled_digest(self.data_path), "ids": sampled_digest(self.ids_path)}
            atomic_write(self.manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(manifest)))
        except OSError as exc:
            log.warning("could not save the vector file for %s: %s", self.model_key, exc)
            return False
        return True


def _save(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def _save_blocks(path: str, n: int, dim: int, rows) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
    try:
        for start in range(0, n, BLOCK):
            stop = min(start + BLOCK, n)
            out[start:stop] = rows(start, stop)
            out.flush()  # written back, so that its pages can be let go of
            let_go(out)
    finally:
        del out
