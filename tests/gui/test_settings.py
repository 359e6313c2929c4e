"""The typed QSettings registry: defaults, coercion of INI strings, clamping, CoreConfig."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QByteArray, QSettings

from clipdesk.config import CoreConfig
from clipdesk.gui.settings import REGISTRY, Setting, Settings


@pytest.fixture
def settings(qapp):
    return Settings()


def test_defaults(settings):
    assert settings.get("grid/thumb_size") == 160
    assert settings.get("library/last") == ""
    assert settings.get("model/spec") == ""
    assert settings.get("model/device") == "auto"
    assert settings.get("search/saved") == []
    assert settings.get("search/k") == 200
    assert settings.get("window/geometry") == QByteArray()


def test_unknown_key_is_an_error(settings):
    with pytest.raises(KeyError):
        settings.get("grid/thumbsize")


def test_round_trip_through_the_ini_file(settings, fresh_settings):
    settings.set("grid/thumb_size", 256)
    settings.set("search/saved", ["beach -people"])
    settings.set("window/geometry", QByteArray(b"\x00\x01geometry"))
    settings.set("library/last", "/photos/lib")
    settings.sync()
    assert any(fresh_settings.rglob("*.ini")), "settings must go to the temporary INI"

    again = Settings()  # a fresh reader sees only what the file holds (strings for ints)
    assert again.get("grid/thumb_size") == 256
    assert again.get("search/saved") == ["beach -people"]  # one item comes back as a bare string
    assert again.get("window/geometry") == QByteArray(b"\x00\x01geometry")
    assert again.get("library/last") == "/photos/lib"


def test_strings_from_ini_backends_are_coerced(settings):
    q = settings.qsettings
    q.setValue("grid/thumb_size", "300")
    q.setValue("search/k", "not a number")
    q.setValue("search/saved", "only one")
    assert settings.get("grid/thumb_size") == 300
    assert settings.get("search/k") == 200
    assert settings.get("search/saved") == ["only one"]
    assert Setting("x/flag", bool, False).coerce("true") is True
    assert Setting("x/flag", bool, True).coerce("false") is False


def test_thumb_size_is_clamped(settings):
    settings.thumb_size = 10_000
    assert settings.thumb_size == 512
    settings.qsettings.setValue("grid/thumb_size", "3")
    assert settings.thumb_size == 64


def test_saved_searches(settings):
    settings.add_saved_search("dog")
    settings.add_saved_search("beach")
    settings.add_saved_search("dog")
    assert settings.saved_searches == ["dog", "beach"]
    settings.remove_saved_search("dog")
    settings.remove_saved_search("beach")
    assert settings.saved_searches == []
    assert Settings().saved_searches == []


def test_default_list_is_not_shared(settings):
    settings.get("search/saved").append("oops")
    assert REGISTRY["search/saved"].default == []
    assert settings.get("search/saved") == []


def test_core_config(settings):
    assert settings.core_config() == CoreConfig(model=None, device="auto")
    settings.set("model/spec", "vit-b-16")
    settings.set("model/device", "cuda:1")
    assert settings.core_config() == CoreConfig(model="vit-b-16", device="cuda:1")
    settings.set("model/device", "tpu")
    assert settings.core_config().device == "auto"


def test_explicit_qsettings(tmp_path, qapp):
    q = QSettings(str(tmp_path / "own.ini"), QSettings.Format.IniFormat)
    Settings(q).set("search/k", 50)
    assert Settings(q).get("search/k") == 50


def test_attribute_access(settings):
    settings.thumb_size = 200
    settings.saved_searches = ["a", "b"]
    settings.model_spec = "vit-b-16"
    settings.geometry = QByteArray(b"geo")
    settings.search_k = "50"  # coerced on the way in
    again = Settings()
    assert again.thumb_size == 200
    assert again.saved_searches == ["a", "b"]
    assert again.model_spec == "vit-b-16"
    assert again.model_device == "auto"
    assert again.geometry == QByteArray(b"geo")
    assert not again.splitter  # an empty QByteArray: nothing to restore
    assert again.search_k == 50
    assert again.last_library == ""
