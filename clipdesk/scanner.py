"""Walking photo folders: only ``stat``, never an open, so it cannot hang.

Yields regular files with a supported extension and reports everything it
had to skip (broken links, special files, unreadable directories) as
``WalkError`` items, so the caller can record them and go on.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from clipdesk.imageio import is_supported
from clipdesk.jobs import CancelToken
from clipdesk.paths import LIBRARY_MARKER


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class WalkError:
    path: str
    reason: str


def walk(
    roots: list[Path], skip_dirs: tuple[Path, ...] = (), cancel: CancelToken | None = None
) -> Iterator[FileEntry | WalkError]:
    """Yield supported photo files under ``roots``, depth first, sorted by name.

    Hidden entries and directories holding a clipdesk library are skipped.
    Directory symlinks are followed once: a (device, inode) set breaks loops
    and stops the same folder being listed twice; the same goes for files.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    skip = {_key(p) for p in skip_dirs if p.exists()}
    for root in roots:
        root_path = os.fspath(root)
        try:
            st = os.stat(root_path)
        except OSError as exc:
            yield WalkError(root_path, f"cannot open folder: {exc.strerror or exc}")
            continue
        if stat.S_ISREG(st.st_mode):  # a single file given directly
            if is_supported(os.path.basename(root_path)) and (st.st_dev, st.st_ino) not in seen_files:
                seen_files.add((st.st_dev, st.st_ino))
                yield FileEntry(root_path, st.st_size, st.st_mtime_ns)
            continue
        yield from _walk_dir(root_path, st, seen_dirs, seen_files, skip, cancel)


def _key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _walk_dir(root, root_st, seen_dirs, seen_files, skip, cancel) -> Iterator[FileEntry | WalkError]:
    stack = [(root, root_st)]
    while stack:
        if cancel is not None and cancel.cancelled:
            return
        path, st = stack.pop()
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs or key in skip:
            continue
        seen_dirs.add(key)
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield WalkError(path, f"cannot list folder: {exc.strerror or exc}")
            continue
        if any(e.name == LIBRARY_MARKER for e in entries):
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                est = entry.stat(follow_symlinks=True)
            except OSError as exc:
                if is_supported(entry.name):
                    reason = "broken symbolic link" if entry.is_symlink() else exc.strerror or str(exc)
                    yield WalkError(entry.path, reason)
                continue
            if stat.S_ISDIR(est.st_mode):
                subdirs.append((entry.path, est))
            elif is_supported(entry.name):
                if not stat.S_ISREG(est.st_mode):
                    yield WalkError(entry.path, "not a regular file (FIFO, socket or device); skipped")
                    continue
                fkey = (est.st_dev, est.st_ino)
                if fkey in seen_files:  # hard link or symlink to a file already listed
                    continue
                seen_files.add(fkey)
                yield FileEntry(entry.path, est.st_size, est.st_mtime_ns)
        stack.extend(reversed(subdirs))
