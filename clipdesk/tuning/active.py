"""Searching a tuned library: the one place an engine is wrapped, for the CLI and the app alike.

``wrap_engine(library, engine)`` returns ``engine`` itself unless the library
has an active tuning made for that engine's embedding space; then it returns
a ``TunedEngine``, whose ``key`` is the tuned identity and whose encoders
apply the heads. Everything that takes an ``Encoder`` (search, labels,
indexing: new photos get tuned vectors) then works in the tuned space
unchanged. Applying the heads is numpy only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from clipdesk.engine.base import InputSpec
from clipdesk.store.db import Library
from clipdesk.tuning.heads import Heads, load_heads
from clipdesk.tuning.state import ACTIVE_META, get_state, heads_path

log = logging.getLogger(__name__)
_cache: dict[tuple[str, int, int], Heads] = {}  # (path, mtime, size) -> heads: searches reload nothing


class TunedEngine:
    """An ``Encoder`` in the tuned space: the base engine's vectors passed through the heads.

    Every other attribute (``spec``, ``model``, ``device``, ...) is the base
    engine's, so callers that show or load the model see the real one.
    """

    def __init__(self, base, heads: Heads) -> None:
        self.base = base
        self.heads = heads

    @property
    def key(self) -> str:
        return self.heads.tuned_key

    @property
    def dim(self) -> int:
        return self.base.dim

    @property
    def precision(self) -> str:
        return self.base.precision

    @property
    def batch_size(self) -> int:
        return self.base.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.base.batch_size = value

    def input_spec(self) -> InputSpec:
        return self.base.input_spec()

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return self.heads.image.apply(self.base.encode_pixels(pixels))

    def encode_files(self, paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        return self.heads.image.apply(self.base.encode_files(paths))

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        return self.heads.text.apply(self.base.encode_text(texts))

    def __getattr__(self, name: str):
        # Only reached for names not defined here: the base engine's own attributes.
        return getattr(self.__dict__["base"], name)


def unwrap(engine):
    """The base engine under any tuning wrapper (caption decoders and tuning itself work in the base space)."""
    return engine.base if isinstance(engine, TunedEngine) else engine


def active_heads(library: Library, base_key: str) -> Heads | None:
    """The library's active heads, if they were made for ``base_key``; None otherwise (or if their file is gone)."""
    state = get_state(library, ACTIVE_META)
    if not state or state.get("base_key") != base_key:
        return None
    path = heads_path(library, str(state.get("digest")))
    try:
        st = path.stat()
        cached = _cache.get((str(path), st.st_mtime_ns, st.st_size))
        heads = cached or load_heads(path)
    except (OSError, ValueError) as exc:
        log.warning("tuning heads %s cannot be read (%s): searching the base vectors", path, exc)
        return None
    if heads.tuned_key != state.get("key"):
        log.warning("tuning heads %s do not match the active identity: searching the base vectors", path)
        return None
    _cache[(str(path), st.st_mtime_ns, st.st_size)] = heads
    return heads


def wrap_engine(library: Library, engine):
    """``engine``, or a ``TunedEngine`` over it when ``library`` searches a tuning of ``engine``'s space."""
    base = unwrap(engine)
    heads = active_heads(library, base.key)
    return base if heads is None else TunedEngine(base, heads)
