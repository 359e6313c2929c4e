"""Hashing whole files: ``hashlib.file_digest``, made cancellable.

``hashlib.file_digest`` reads the file itself, in C-sized chunks, and has no
way to stop; the weights clipdesk hashes are up to 3.5 GB (seconds to tens of
seconds on a laptop disk), and a download's Ctrl-C or Cancel must not wait for
that. So the file is handed to it behind a reader that checks the cancel token
(and a pause) before every chunk: the hashing loop stays the standard
library's, and a stop costs at most one chunk.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

from clipdesk.errors import Cancelled, ClipdeskError
from clipdesk.jobs import CancelToken


class ChecksumMismatch(ClipdeskError):
    exit_code = 3


class _CancellableReader(io.RawIOBase):
    """A raw file whose every ``readinto`` first asks ``cancel`` whether to go on."""

    def __init__(self, raw, cancel: CancelToken, message: str) -> None:
        super().__init__()
        self._raw, self._cancel, self._message = raw, cancel, message

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._cancel.checkpoint():
            raise Cancelled(self._message)
        return self._raw.readinto(buffer)


def file_digest(path: str | Path, algorithm: str | Callable[[], object] = "sha256",
                cancel: CancelToken | None = None, cancelled: str = "Cancelled.") -> str:
    """The hex digest of the file at ``path``.

    Args:
        path: the file.
        algorithm: a ``hashlib`` name, or a constructor such as ``lambda: hashlib.blake2b(digest_size=8)``.
        cancel: checked before each chunk; a cancel raises ``Cancelled(cancelled)``.
        cancelled: the message of that ``Cancelled``.
    """
    with open(path, "rb", buffering=0) as fh:
        source = fh if cancel is None else _CancellableReader(fh, cancel, cancelled)
        return hashlib.file_digest(source, algorithm).hexdigest()


def sha256_file(path: Path, cancel: CancelToken | None = None) -> str:
    """SHA-256 of a downloaded file; a cancel raises ``Cancelled("Download cancelled.")``."""
    return file_digest(path, "sha256", cancel, "Download cancelled.")
