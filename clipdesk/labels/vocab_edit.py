"""Edit the library's own ``labels.yaml``: add, change, hide and remove labels.

The file only ever holds the user's entries; shipped files are never written.
An entry with a shipped label's name overrides it, ``disabled: true`` hides
one, and removing the entry brings the shipped label back (see vocab.py).
The file is rewritten whole (comments in it are not kept; the previous
version is saved as ``labels.yaml.bak``). Nothing here re-embeds photos: the
next labelling run encodes the changed descriptors and re-decides labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from clipdesk.labels.vocab import USER_FILE, LabelDef, VocabularyError, load_vocabulary

MAX_DESCRIPTORS = 8
MAX_NAME = 64
MAX_DESCRIPTOR = 120
_NAME = re.compile(r"^[a-z0-9][a-z0-9 '&.+-]*$")


@dataclass(frozen=True)
class LabelEntry:
    """A label as the editor lists it."""

    label: LabelDef  # what labelling uses (the shipped one when hidden)
    state: str  # shipped | user (added by the user) | edited (overrides a shipped one) | hidden


def list_labels(library_root: Path, shipped: Path | None = None) -> list[LabelEntry]:
    """Every label, shipped and the user's, sorted by hierarchical name."""
    base = {lab.name: lab for lab in load_vocabulary(None, shipped).labels}
    effective = {lab.name: lab for lab in load_vocabulary(library_root, shipped).labels}
    out = []
    for name, lab in effective.items():
        state = "shipped" if lab.source == "shipped" else "edited" if name in base else "user"
        out.append(LabelEntry(lab, state))
    out += [LabelEntry(lab, "hidden") for name, lab in base.items() if name not in effective]
    return sorted(out, key=lambda e: e.label.path)


def normalise(name: str, descriptors, synonyms=(), parent: str | None = None) -> LabelDef:
    """Trimmed, lower-cased, blank lines dropped: what the user meant."""
    return LabelDef(
        name=" ".join(name.split()).lower(),
        descriptors=tuple(d for d in (" ".join(str(x).split()) for x in descriptors) if d),
        synonyms=tuple(s for s in (" ".join(str(x).split()).lower() for x in synonyms) if s),
        parent=(parent or "").strip().strip("/").lower() or None,
        source="user",
    )


def validate(label: LabelDef, library_root: Path, replacing: str | None = None,
             shipped: Path | None = None) -> list[str]:
    """Problems with ``label`` as a new or edited label, in words a user can act on; [] if fine."""
    problems = []
    if not label.name:
        problems.append("The label needs a name.")
    elif len(label.name) > MAX_NAME:
        problems.append(f"The name is longer than {MAX_NAME} characters.")
    elif not _NAME.match(label.name):
        problems.append("The name may use letters, digits, spaces and ' & . + - only (use Parent for a hierarchy).")
    if not label.descriptors:
        problems.append("Add at least one descriptor: a short phrase saying what the photo shows.")
    elif len(label.descriptors) > MAX_DESCRIPTORS:
        problems.append(f"Use at most {MAX_DESCRIPTORS} descriptors (3 to 8 work best).")
    long = [d for d in label.descriptors if len(d) > MAX_DESCRIPTOR]
    if long:
        problems.append(f"Descriptors must be short (under {MAX_DESCRIPTOR} characters): '{long[0][:40]}…'")
    if len(set(label.descriptors)) != len(label.descriptors):
        problems.append("A descriptor is listed twice.")
    if label.parent and not all(_NAME.match(part) for part in label.parent.split("/")):
        problems.append("The parent may use letters, digits, spaces and ' & . + - (and / between levels).")
    if label.parent and label.name in label.parent.split("/"):
        problems.append("A label cannot be its own parent.")
    entries = list_labels(library_root, shipped)
    hidden = {e.label.name for e in entries if e.state == "hidden"}
    existing = [e.label for e in entries]
    others = [lab for lab in existing if lab.name != (replacing or label.name)]
    taken = any(o.name == label.name for o in others) if replacing is not None and label.name != replacing else (
        replacing is None and any(lab.name == label.name for lab in existing))
    if taken and label.name in hidden:
        problems.append(f"'{label.name}' is a hidden shipped label: select it and choose Show again.")
    elif taken:
        problems.append(f"There is already a label called '{label.name}'"
                        + ("; edit it instead." if replacing is None else "."))
    for other in others:
        if label.name in other.synonyms:
            problems.append(f"'{label.name}' is already a synonym of '{other.name}'.")
        clash = next((s for s in label.synonyms if s == other.name), None)
        if clash:
            problems.append(f"The synonym '{clash}' is already the name of another label.")
    return problems


def save_label(library_root: Path, label: LabelDef, replacing: str | None = None,
               shipped: Path | None = None) -> None:
    """Add ``label`` (``replacing=None``) or replace the label named ``replacing``; validated first."""
    problems = validate(label, library_root, replacing, shipped)
    if problems:
        raise VocabularyError(" ".join(problems))
    entries = [e for e in _read(library_root) if e["name"] not in {label.name, replacing}]
    entry = {"name": label.name, "descriptors": list(label.descriptors)}
    if label.synonyms:
        entry["synonyms"] = list(label.synonyms)
    if label.parent:
        entry["parent"] = label.parent
    base = {lab.name for lab in load_vocabulary(None, shipped).labels}
    if replacing and replacing != label.name and replacing in base:
        entries.append({"name": replacing, "disabled": True})  # a renamed shipped label must not come back
    _write(library_root, [*entries, entry])


def remove_label(library_root: Path, name: str, shipped: Path | None = None) -> str:
    """Delete a user label, revert an edited one, or hide a shipped one; returns what happened."""
    entries = _read(library_root)
    mine = [e for e in entries if e["name"] == name]
    base = {lab.name for lab in load_vocabulary(None, shipped).labels}
    if mine and not any(e.get("disabled") for e in mine):
        _write(library_root, [e for e in entries if e["name"] != name])
        return "reverted" if name in base else "deleted"
    if name in base and not mine:
        _write(library_root, [*entries, {"name": name, "disabled": True}])
        return "hidden"
    raise VocabularyError(f"'{name}' is not a label that can be removed.")


def restore_label(library_root: Path, name: str) -> None:
    """Show a hidden shipped label again."""
    _write(library_root, [e for e in _read(library_root) if not (e["name"] == name and e.get("disabled"))])


def _read(library_root: Path) -> list[dict]:
    path = Path(library_root) / USER_FILE
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise VocabularyError(f"Cannot read the label file {path}: {exc}") from None
    entries = data.get("labels") if isinstance(data, dict) else None
    return [dict(e, name=str(e["name"]).strip().lower()) for e in entries or [] if isinstance(e, dict) and e.get("name")]


def _write(library_root: Path, entries: list[dict]) -> None:
    path = Path(library_root) / USER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Your labels for this library (clipdesk). Same schema as resources/labels/*.yaml;\n"
            "# an entry named like a shipped label replaces it, 'disabled: true' hides one.\n"
            + yaml.safe_dump({"labels": entries}, sort_keys=False, allow_unicode=True, width=100))
    if path.is_file():
        path.with_name(USER_FILE + ".bak").write_bytes(path.read_bytes())
    tmp = path.with_name(USER_FILE + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
