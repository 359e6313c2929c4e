"""Self-test checks (the Qt-free half): pass on an intact pipeline, fail with a reason otherwise."""

from __future__ import annotations

import pytest

from clipdesk.config import CoreConfig
from clipdesk.indexer import index
from clipdesk.selftest import NEAR_DUPLICATE, SelfTestFailed, check_library, make_samples, samples_dir


def _indexed(library, tiny_engine):
    index(library, [samples_dir()], tiny_engine, CoreConfig(decode_workers=0))
    return library


def test_shipped_samples_pass(library, tiny_engine):
    assert len(list(samples_dir().iterdir())) == 4
    lines = check_library(_indexed(library, tiny_engine), tiny_engine)
    assert f"similar search: {NEAR_DUPLICATE} first" in lines


def test_a_missing_near_duplicate_fails_with_the_ranking(library, tiny_engine, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("CLIPDESK_RESOURCES", str(tmp_path / "res"))
    make_samples(samples_dir())
    Image.effect_noise((200, 150), 90).convert("RGB").save(samples_dir() / NEAR_DUPLICATE)
    with pytest.raises(SelfTestFailed, match="similar search .* expected red_circle_copy.jpg first"):
        check_library(_indexed(library, tiny_engine), tiny_engine)
