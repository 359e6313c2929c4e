"""Walking photo folders: only ``stat``, never an open, so it cannot hang.

Yields regular files with a supported extension and reports everything it
had to skip (broken links, special files, unreadable directories) as
``WalkError`` items, so the caller can record them and go on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    Symbolic links are followed, but only after every real path has been
    walked, so a file reachable both directly and through a link is listed
    under its real path, and adding a link never changes where a photo is.
    A (device, inode) set breaks loops and lists each folder and each file
    (hard links too) once.
    """
    w = _Walker(skip={_key(p) for p in skip_dirs if p.exists()}, cancel=cancel)
    for root in roots:
        if w.cancelled:
            return
        root_path = os.fspath(root)
        try:
            st = os.stat(root_path)
        except OSError as exc:
            yield WalkError(root_path, f"cannot open folder: {exc.strerror or exc}")
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from w.walk_dir(root_path, st)
        elif stat.S_ISREG(st.st_mode):  # a single file given directly
            if is_supported(os.path.basename(root_path)):
                yield from w.file(root_path, st)
        else:
            yield WalkError(root_path, "not a regular file or folder (FIFO, socket or device); skipped")
    # Then what only links lead to; links found there wait for the next round.
    while w.deferred and not w.cancelled:
        links, w.deferred = w.deferred, []
        for path, st in links:
            if w.cancelled:
                return
            if stat.S_ISDIR(st.st_mode):
                yield from w.walk_dir(path, st)
            else:
                yield from w.file(path, st)


def _key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


class _Walker:
    def __init__(self, skip: set[tuple[int, int]], cancel: CancelToken | None) -> None:
        self.skip = skip
        self.cancel = cancel
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[tuple[int, int]] = set()
        self.deferred: list[tuple[str, os.stat_result]] = []  # link targets: (link path, target stat)

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.cancelled

    def file(self, path: str, st: os.stat_result) -> Iterator[FileEntry]:
        key = (st.st_dev, st.st_ino)
        if key not in self.seen_files:  # else a hard link or link to a file already listed
            self.seen_files.add(key)
            yield FileEntry(path, st.st_size, st.st_mtime_ns)

    def walk_dir(self, root: str, root_st: os.stat_result) -> Iterator[FileEntry | WalkError]:
        stack = [(root, root_st)]
        while stack:
            if self.cancelled:
                return
            path, st = stack.pop()
            key = (st.st_dev, st.st_ino)
            if key in self.seen_dirs or key in self.skip:
                continue
            self.seen_dirs.add(key)
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
                if self.cancelled:
                    return
                if entry.name.startswith("."):
                    continue
                try:
                    link = entry.is_symlink()
                    est = entry.stat(follow_symlinks=True)
                except OSError as exc:
                    if is_supported(entry.name):
                        reason = "broken symbolic link" if _is_link(entry) else exc.strerror or str(exc)
                        yield WalkError(entry.path, reason)
                    continue
                if stat.S_ISDIR(est.st_mode):
                    if link:
                        self.deferred.append((entry.path, est))
                    else:
                        subdirs.append((entry.path, est))
                elif is_supported(entry.name):
                    if not stat.S_ISREG(est.st_mode):
                        yield WalkError(entry.path, "not a regular file (FIFO, socket or device); skipped")
                    elif link:
                        self.deferred.append((entry.path, est))
                    else:
                        yield from self.file(entry.path, est)
            stack.extend(reversed(subdirs))


def _is_link(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False
