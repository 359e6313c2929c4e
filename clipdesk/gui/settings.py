"""User preferences in QSettings behind a small typed key registry.

The idea comes from MusicBrainz Picard's ``Option``: every key is declared
once with its type and default, so a typo is an error instead of a silently
new key, and values come back with the right type whatever the backend
stored. INI backends (Linux, and the test fixture) hand ints, bools and
one-element lists back as strings; the coercion here undoes that.

Core never reads QSettings: it gets a ``CoreConfig`` from ``core_config()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QByteArray, QCoreApplication, QSettings

from clipdesk.config import CoreConfig
from clipdesk.engine.clip import DEVICE_PATTERN


@dataclass(frozen=True)
class Setting:
    """One declared key: its type, its default and, for ints, a clamp range."""

    key: str
    type: type
    default: Any
    minimum: int | None = None
    maximum: int | None = None

    def coerce(self, raw: Any) -> Any:
        """Turn whatever QSettings returned into ``type``; the default if unreadable."""
        if raw is None:
            return self._fresh_default()
        try:
            if self.type is QByteArray:
                return raw if isinstance(raw, QByteArray) else QByteArray(bytes(raw))
            if self.type is bool:
                return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("true", "1", "yes", "on")
            if self.type is int:
                return self._clamp(int(str(raw).strip()) if not isinstance(raw, int) else raw)
            if self.type is list:
                # INI: an empty list reads back as None or "", one item as a bare string.
                if isinstance(raw, str):
                    return [raw] if raw else []
                return [str(item) for item in raw]
            return self.type(raw)
        except (TypeError, ValueError):
            return self._fresh_default()

    def _clamp(self, value: int) -> int:
        if self.minimum is not None:
            value = max(self.minimum, value)
        if self.maximum is not None:
            value = min(self.maximum, value)
        return value

    def _fresh_default(self) -> Any:
        # Mutable defaults are copied so a caller appending to the list cannot change the registry.
        if self.type is list:
            return list(self.default)
        if self.type is QByteArray:
            return QByteArray(self.default)
        return self.default


REGISTRY: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting("window/geometry", QByteArray, QByteArray()),
        Setting("window/state", QByteArray, QByteArray()),
        Setting("window/splitter", QByteArray, QByteArray()),
        Setting("grid/thumb_size", int, 160, minimum=64, maximum=512),
        Setting("library/last", str, ""),
        Setting("model/spec", str, ""),  # "": the library's current model, else the default preset
        Setting("model/device", str, "auto"),
        Setting("model/precision", str, "auto"),  # auto | fp32 | fp16 | bf16 (auto: fp16 on CUDA, else fp32)
        Setting("model/first_run_done", bool, False),  # the first-run dialog got an answer
        Setting("search/saved", list, []),
        Setting("search/k", int, 200, minimum=1, maximum=10_000),
    )
}



class _Key:
    """A typed attribute over one registered key (so ``settings.thumb_size`` reads like a field)."""

    def __init__(self, key: str) -> None:
        self.key = REGISTRY[key].key  # fails at import time for an undeclared key

    def __get__(self, obj: Settings | None, owner: type) -> Any:
        return self if obj is None else obj.get(self.key)

    def __set__(self, obj: Settings, value: Any) -> None:
        obj.set(self.key, value)


class Settings:
    """Typed access to the registered keys.

    Args:
        qsettings: the store to use; by default the app's user-scope settings
            in ``QSettings.defaultFormat()`` (so tests can redirect them).
    """

    def __init__(self, qsettings: QSettings | None = None) -> None:
        if qsettings is None:
            org = QCoreApplication.organizationName() or "clipdesk"
            app = QCoreApplication.applicationName() or "clipdesk"
            qsettings = QSettings(QSettings.defaultFormat(), QSettings.Scope.UserScope, org, app)
        self.qsettings = qsettings

    def get(self, key: str) -> Any:
        """The value of ``key``, typed and clamped; raises KeyError for an undeclared key."""
        setting = REGISTRY[key]
        return setting.coerce(self.qsettings.value(setting.key))

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (coerced and clamped first, so what is stored is what ``get`` returns)."""
        setting = REGISTRY[key]
        value = setting.coerce(value)
        if setting.type is list and not value:
            # An empty list does not survive every backend; absence means "empty" anyway.
            self.qsettings.remove(setting.key)
        else:
            self.qsettings.setValue(setting.key, value)

    def reset(self, key: str) -> None:
        """Forget ``key`` so it reads as its default again."""
        self.qsettings.remove(REGISTRY[key].key)

    def sync(self) -> None:
        self.qsettings.sync()

    # -- attribute access: ``settings.thumb_size = 200`` ---------------------------

    geometry = _Key("window/geometry")
    state = _Key("window/state")
    splitter = _Key("window/splitter")
    thumb_size = _Key("grid/thumb_size")
    last_library = _Key("library/last")
    model_spec = _Key("model/spec")
    model_device = _Key("model/device")
    model_precision = _Key("model/precision")
    first_run_done = _Key("model/first_run_done")
    saved_searches = _Key("search/saved")
    search_k = _Key("search/k")

    def add_saved_search(self, text: str) -> None:
        """Remember a query once, most recent first."""
        text = text.strip()
        if not text:
            return
        saved = [s for s in self.saved_searches if s != text]
        self.set("search/saved", [text, *saved])

    def remove_saved_search(self, text: str) -> None:
        self.set("search/saved", [s for s in self.saved_searches if s != text])

    def core_config(self) -> CoreConfig:
        """The core's settings: model spec ("" → None) and device (unknown → "auto")."""
        device = self.get("model/device").strip().lower()
        return CoreConfig(
            model=self.get("model/spec").strip() or None,
            device=device if DEVICE_PATTERN.match(device) else "auto",
        )
