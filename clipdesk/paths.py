"""Where clipdesk keeps its data.

One library per directory: ``--library DIR`` beats ``CLIPDESK_HOME``, which
beats the platform's user data dir. Model weights live in a shared cache
(``CLIPDESK_MODELS`` or the platform cache dir) so several libraries reuse them.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "clipdesk"
DB_NAME = "clipdesk.db"
# Present in every library directory; the scanner never descends into a
# directory that holds it, so a library inside a photo tree is never indexed.
LIBRARY_MARKER = "CLIPDESK_LIBRARY"


def library_dir(override: str | os.PathLike[str] | None = None) -> Path:
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get("CLIPDESK_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "library"


def models_dir() -> Path:
    """Directory searched for local checkpoints and used as the download cache."""
    env = os.environ.get("CLIPDESK_MODELS")
    if env:
        return Path(env).expanduser().resolve()
    home = os.environ.get("CLIPDESK_HOME")
    if home:
        return Path(home).expanduser().resolve() / "models"
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "models"


def thumbnail_cache_dir() -> Path:
    """Directory of the on-disk thumbnail cache (safe to delete at any time)."""
    home = os.environ.get("CLIPDESK_HOME")
    if home:
        return Path(home).expanduser().resolve() / "cache" / "thumbnails"
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "thumbnails"
