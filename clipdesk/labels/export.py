"""Export the library's labels (and captions) to XMP sidecars, for the CLI and the app.

Rejected labels are left out (and taken back from a sidecar clipdesk wrote them
to); the hierarchical keyword is the vocabulary's ``parent/name`` path in
Lightroom's ``parent|name`` form. Photos are only read, never written:
``xmp.merge_sidecar`` merges into ``<photo>.xmp`` beside them, keeping what other
tools wrote there. A sidecar that cannot be merged into is one line in the
report, and the export goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress
from clipdesk.labels.vocab import Vocabulary
from clipdesk.labels.xmp import SidecarConflict, merge_sidecar, sidecar_path
from clipdesk.store.db import Library
from clipdesk.store.models import Caption, Label, Photo


@dataclass
class ExportReport:
    written: list[str] = field(default_factory=list)  # sidecar paths, merged into or already up to date
    skipped: list[str] = field(default_factory=list)  # one reason per photo whose sidecar was left as it was
    notes: list[str] = field(default_factory=list)  # "path: what was kept", for sidecars that were written
    cancelled: bool = False


def export_sidecars(library: Library, vocabulary: Vocabulary, photo_ids: Iterable[int] | None = None,
                    force: bool = False, progress: ProgressCallback = no_progress,
                    cancel: CancelToken | None = None) -> ExportReport:
    """Merge labels and captions into the sidecar of every present photo with labels (or just ``photo_ids``).

    Args:
        library: The library to read labels and captions from.
        vocabulary: Gives each label its ``parent|name`` hierarchical keyword.
        photo_ids: Only these photos; None or empty for all.
        force: Also replace a description another tool wrote with clipdesk's
            caption (everything else in a sidecar is kept either way).
        progress: Called with a ``Progress`` per photo.
        cancel: Stops the export between two photos.

    Returns:
        What was written, skipped (with the reason) and kept.
    """
    cancel = cancel or CancelToken()
    wanted = set(photo_ids or ())
    with library.session() as s:
        rows = s.execute(select(Photo.id, Photo.path, Label.label, Label.status).join(Label, Label.photo_id == Photo.id)
                         .where(Photo.missing_since.is_(None))).all()
        captions = dict(s.execute(select(Caption.photo_id, Caption.text)
                                  .order_by((Caption.source == "user").asc())).all())  # user caption wins
    by_photo: dict[int, tuple[str, list[str]]] = {}
    for pid, path, name, status in rows:
        if not wanted or pid in wanted:
            names = by_photo.setdefault(pid, (path, []))[1]
            if status != "rejected":
                names.append(name)
    # A photo whose labels were all rejected only needs a visit if a sidecar is there to take them back from.
    by_photo = {pid: v for pid, v in by_photo.items() if v[1] or sidecar_path(Path(v[0])).exists()}
    report = ExportReport()
    progress(Progress("exporting", 0, len(by_photo)))
    for done, (pid, (path, names)) in enumerate(sorted(by_photo.items()), 1):
        if cancel.checkpoint():
            report.cancelled = True
            break
        hierarchical = []
        for name in names:
            label = vocabulary.get(name)
            hierarchical.append(label.path.replace("/", "|") if label is not None else name)
        try:
            result = merge_sidecar(path, names, captions.get(pid) if names else None, hierarchical, force=force)
        except SidecarConflict as exc:  # not XMP, or not mergeable without loss: one line, go on
            report.skipped.append(str(exc))
        except OSError as exc:  # a read-only folder or a vanished disk: one line, go on
            report.skipped.append(f"{path}: {exc.strerror or exc}")
        else:
            if names or result.changed:
                report.written.append(str(result.path))
            report.notes += [f"{result.path}: {note}" for note in result.notes]
        progress(Progress("exporting", done, len(by_photo), len(report.skipped)))
    return report
