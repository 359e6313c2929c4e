"""The label vocabulary: shipped YAML files plus the user's own file.

Schema (one YAML file holds a list under ``labels``)::

    labels:
      - name: dog                 # unique, lower case; shown to the user
        parent: animal            # optional: builds "animal/dog" for hierarchical keywords
        synonyms: [puppy, hound]  # optional: other words that mean the same (search, matching)
        descriptors:              # 3-8 short visual phrases: what the photo shows
          - a four-legged animal with fur
          - a wagging tail
          - floppy or pointed ears

The shipped files live in ``resources/labels/`` (``CLIPDESK_RESOURCES``
overrides the resources folder, e.g. in a frozen build). A library may add
``labels.yaml`` in its folder: entries there add labels or replace shipped
ones of the same name (``disabled: true`` hides one). Changing descriptors
never needs re-embedding photos: only the descriptor texts are encoded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from clipdesk.errors import ClipdeskError

SHIPPED = Path(os.environ.get("CLIPDESK_RESOURCES") or Path(__file__).resolve().parents[2] / "resources") / "labels"
USER_FILE = "labels.yaml"
# libyaml's safe loader when PyYAML has it: ~10x faster, and the editor reloads on every change.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class VocabularyError(ClipdeskError):
    """A label file that cannot be used; the message names the file and entry."""

    exit_code = 2


@dataclass(frozen=True)
class LabelDef:
    name: str
    descriptors: tuple[str, ...]
    synonyms: tuple[str, ...] = ()
    parent: str | None = None
    source: str = "shipped"  # shipped | user

    @property
    def path(self) -> str:
        """Hierarchical name, e.g. ``animal/dog``."""
        return f"{self.parent}/{self.name}" if self.parent else self.name


@dataclass
class Vocabulary:
    labels: list[LabelDef] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, name: str) -> LabelDef | None:
        name = name.strip().lower()
        for label in self.labels:
            if label.name == name or name in label.synonyms:
                return label
        return None

    def names(self) -> list[str]:
        return [label.name for label in self.labels]


def _parse(path: Path, source: str) -> tuple[list[LabelDef], set[str]]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise VocabularyError(f"Cannot read the label file {path}: {exc}") from None
    entries = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise VocabularyError(f"{path}: expected a 'labels:' list at the top.")
    labels, disabled = [], set()
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not str(entry.get("name", "")).strip():
            raise VocabularyError(f"{path}: entry {i} has no name.")
        name = str(entry["name"]).strip().lower()
        if entry.get("disabled"):
            disabled.add(name)
            continue
        descriptors = tuple(str(d).strip() for d in entry.get("descriptors") or [] if str(d).strip())
        if not descriptors:
            raise VocabularyError(f"{path}: label '{name}' needs at least one descriptor.")
        synonyms = tuple(str(s).strip().lower() for s in entry.get("synonyms") or [] if str(s).strip())
        parent = str(entry["parent"]).strip().lower() if entry.get("parent") else None
        labels.append(LabelDef(name, descriptors, synonyms, parent, source))
    return labels, disabled


def load_vocabulary(library_root: Path | None = None, shipped: Path | None = None) -> Vocabulary:
    """Shipped labels, then the library's ``labels.yaml`` on top."""
    shipped = SHIPPED if shipped is None else shipped  # read at call time: tests point it elsewhere
    by_name: dict[str, LabelDef] = {}
    for path in sorted(shipped.glob("*.yaml")):
        for label in _parse(path, "shipped")[0]:
            if label.name in by_name:
                raise VocabularyError(f"{path}: label '{label.name}' is defined twice in the shipped vocabulary.")
            by_name[label.name] = label
    user = library_root / USER_FILE if library_root is not None else None
    if user is not None and user.is_file():
        labels, disabled = _parse(user, "user")
        for name in disabled:
            by_name.pop(name, None)
        for label in labels:
            by_name[label.name] = label
    return Vocabulary(list(by_name.values()))
