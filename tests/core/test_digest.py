"""``engine.digest``: hashlib.file_digest, cancellable between chunks."""

from __future__ import annotations

import hashlib
import os

import pytest

from clipdesk.engine.digest import file_digest, sha256_file
from clipdesk.errors import Cancelled
from clipdesk.jobs import CancelToken


class _CancelAfter(CancelToken):
    """Cancels itself at the ``n``-th checkpoint, and counts them."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.calls = n, 0

    def checkpoint(self) -> bool:
        self.calls += 1
        if self.calls >= self.n:
            self.cancel()
        return super().checkpoint()


def test_the_digests_are_hashlibs(tmp_path):
    data = os.urandom(3 << 20)  # several of file_digest's chunks
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path, CancelToken()) == hashlib.sha256(data).hexdigest()
    assert file_digest(path, lambda: hashlib.blake2b(digest_size=8)) == hashlib.blake2b(data, digest_size=8).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_digest(empty, "sha256", CancelToken()) == hashlib.sha256(b"").hexdigest()


def test_a_cancel_stops_the_hashing_within_a_chunk(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(os.urandom(4 << 20))
    token = _CancelAfter(3)
    with pytest.raises(Cancelled, match="Download cancelled."):
        sha256_file(path, token)
    assert token.calls == 3  # stopped at once, not after reading the rest of the file
