"""The photos ``eval retrieval`` measures on: the shared data sets, a folder of classes, and their digests.

The shared data (``coco_mini``, ``imagenet_sample``) is found as the other
harnesses find it: ``$CLIPDESK_SHARED_DATA``, else a ``shared/data`` folder
above the package. Every set records a digest of its file list (names
relative to the set's folder, with sizes), so two reports can tell whether
they measured the same photos on different machines.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from clipdesk.errors import ClipdeskError
from clipdesk.imageio import is_supported

COCO = "coco_mini"
IMAGENET = "imagenet_sample"


class RetrievalDataError(ClipdeskError):
    """The data an evaluation needs is missing or unreadable."""

    exit_code = 2


@dataclass
class CaptionedSet:
    """COCO photos, each with its reference captions."""

    root: Path
    files: list[Path]
    captions: list[list[str]]


@dataclass
class ClassSet:
    """Photos with one class each: the ImageNet sample, or a folder of class sub-folders."""

    root: Path
    files: list[Path]
    truth: list[str]  # class key per file
    classes: dict[str, str] = field(default_factory=dict)  # key -> display name, every class (the candidates)


def shared_data_root(override: str | os.PathLike[str] | None = None) -> Path | None:
    """The shared data folder (holding ``coco_mini``, ``imagenet_sample``), or None when there is none."""
    if override:
        return Path(override)
    env = os.environ.get("CLIPDESK_SHARED_DATA")
    roots = [Path(env)] if env else [p / "shared" / "data" for p in Path(__file__).resolve().parents]
    for root in roots:
        if (root / COCO).is_dir() or (root / IMAGENET).is_dir():
            return root
    return None


def load_coco(folder: Path, limit: int = 0) -> CaptionedSet:
    """``captions.json`` (``[{"file", "split", "captions": [...]}, ...]``) and the photos it names, sorted."""
    try:
        entries = json.loads((folder / "captions.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RetrievalDataError(f"Cannot read {folder / 'captions.json'}: {exc}") from None
    entries = sorted((e for e in entries if e.get("captions") and (folder / "images" / e["file"]).is_file()),
                     key=lambda e: e["file"])
    if limit:
        entries = entries[:limit]
    return CaptionedSet(folder, [folder / "images" / e["file"] for e in entries],
                        [list(e["captions"]) for e in entries])


def load_imagenet(folder: Path, limit: int = 0) -> ClassSet:
    """The ImageNet sample: ``labels.json`` (file -> class name), ``wnids.json`` (file -> WordNet id).

    Classes are keyed by WordNet id, as ``eval labels`` keys them: two
    ImageNet names repeat ("crane" the bird and the machine, "maillot"), and
    keying by name would merge them. Every class stays a candidate under
    ``limit``, so top-1 stays a 1000-way choice.
    """
    try:
        names = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        wnids = json.loads((folder / "wnids.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RetrievalDataError(f"Cannot read labels.json/wnids.json in {folder}: {exc}") from None
    classes = {wnids[f]: names[f] for f in sorted(names)}
    files = sorted(f for f in names if (folder / f).is_file())
    if limit:
        files = files[:limit]
    return ClassSet(folder, [folder / f for f in files], [wnids[f] for f in files], classes)


def load_folders(folder: Path, limit: int = 0) -> ClassSet:
    """A folder of class sub-folders (GPR1200, INSTRE laid out by class): every photo below a sub-folder is
    of that class. Photos directly in ``folder`` have no class and are left out."""
    if not folder.is_dir():
        raise RetrievalDataError(f"--folders {folder}: not a folder.")
    files, truth = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(p for p in sub.rglob("*") if p.is_file() and is_supported(p.name)):
            files.append(path)
            truth.append(sub.name)
    if limit:
        files, truth = files[:limit], truth[:limit]
    return ClassSet(folder, files, truth, {c: c for c in dict.fromkeys(truth)})


def list_digest(files: Iterable[Path], root: Path | None = None) -> str:
    """A short digest of a file list: each name (relative to ``root``, else the bare file name) and size, in order.

    Never the absolute path, so the same photos give the same digest on any machine.
    """
    h = hashlib.sha256()
    for path in files:
        name = path.relative_to(root).as_posix() if root is not None else path.name
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        h.update(f"{name}\t{size}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def describe(files: list[Path], root: Path) -> dict:
    """What a report says about the data a section used."""
    return {"path": str(root), "files": len(files), "digest": list_digest(files, root)}
