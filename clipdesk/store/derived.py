"""Files derived from the database (the search graph, the vector file): named per model, written atomically,
checked by a sampled digest on open.

A full digest of a 1 GB file would cost as much as the read it saves, so an open checks the size and 64 blocks
spread over the file; the writes are atomic (temp file, fsync, rename) and the manifest that names the digests
is written last, so a kill leaves the old files or none, never a mix the manifest vouches for.
"""

from __future__ import annotations

import glob
import hashlib
import mmap
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

STALE_TEMP_S = 3600
_SAMPLES = 64
_BLOCK = 1 << 16


def model_files(directory: Path, model_key: str, *suffixes: str) -> list[Path]:
    """The paths of a model's derived files in ``directory``: its key made safe as a file name, plus each suffix."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_key)
    return [directory / f"{safe}{suffix}" for suffix in suffixes]


def sampled_digest(path: Path) -> str:
    """blake2b over the size and 64 blocks spread over the file (all of it when small)."""
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as fh:
        if size <= _SAMPLES * _BLOCK:
            h.update(fh.read())
        else:
            for i in range(_SAMPLES):
                fh.seek((size - _BLOCK) * i // (_SAMPLES - 1))
                h.update(fh.read(_BLOCK))
    return h.hexdigest()


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Write via a temp file in the same folder, fsync, then rename over."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def sweep_temp_files(*paths: Path) -> None:
    """Remove temp files a killed save left (the app's graph thread dies with the app); an hour old at least,
    so that another process's save in progress is left alone."""
    cutoff = time.time() - STALE_TEMP_S
    for path in paths:
        for tmp in path.parent.glob(f"{glob.escape(path.name)}*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                pass


def let_go(array) -> None:
    """Drop from this process the pages of a memory-mapped numpy array read or written so far (written ones must be
    flushed first); they stay in the page cache. A no-op for an array in memory, or where the OS lacks madvise."""
    mm = getattr(array, "_mmap", None)
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass
