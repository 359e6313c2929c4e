"""Shared fixtures: an isolated clipdesk home, the shared data, a tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path:
    env = os.environ.get("CLIPDESK_SHARED_DATA")
    if env:
        return Path(env)
    for parent in REPO.parents:
        candidate = parent / "shared" / "data"
        if (candidate / "PROVENANCE.md").is_file():
            return candidate
    raise RuntimeError("../shared/data not found; set CLIPDESK_SHARED_DATA")


SHARED_DATA = _find_shared_data()


@pytest.fixture(autouse=True)
def clipdesk_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own library and model cache, and no network."""
    home = tmp_path / "clipdesk-home"
    monkeypatch.setenv("CLIPDESK_HOME", str(home))
    monkeypatch.setenv("CLIPDESK_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def coco_images(shared_data) -> list[Path]:
    return sorted((shared_data / "coco_mini" / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def tiny_engine():
    """The test-only random model, loaded once per session (seconds on CPU)."""
    from clipdesk.engine.clip import ClipEngine
    from clipdesk.engine.registry import resolve

    engine = ClipEngine(resolve("tiny-random"), device="cpu", batch_size=16)
    engine.model  # noqa: B018
    return engine


@pytest.fixture
def library(tmp_path):
    from clipdesk.store.db import Library
    from clipdesk.store.graph import forget_live

    lib = Library(tmp_path / "lib")
    yield lib
    lib.close()
    forget_live()  # the search graphs this process held for it
