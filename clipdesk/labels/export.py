"""Export the library's labels (and captions) to XMP sidecars, for the CLI and the app.

Rejected labels are left out; the hierarchical keyword is the vocabulary's
``parent/name`` path in Lightroom's ``parent|name`` form. Photos are only
read, never written: ``xmp.write_sidecar`` writes ``<photo>.xmp`` beside them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress
from clipdesk.labels.vocab import Vocabulary
from clipdesk.labels.xmp import SidecarConflict, write_sidecar
from clipdesk.store.db import Library
from clipdesk.store.models import Caption, Label, Photo


@dataclass
class ExportReport:
    written: list[str] = field(default_factory=list)  # sidecar paths
    skipped: list[str] = field(default_factory=list)  # one reason per photo
    cancelled: bool = False


def export_sidecars(library: Library, vocabulary: Vocabulary, photo_ids: Iterable[int] | None = None,
                    force: bool = False, progress: ProgressCallback = no_progress,
                    cancel: CancelToken | None = None) -> ExportReport:
    """Write a sidecar for every present photo with labels (or just ``photo_ids``)."""
    cancel = cancel or CancelToken()
    wanted = set(photo_ids or ())
    with library.session() as s:
        rows = s.execute(select(Photo.id, Photo.path, Label.label).join(Label, Label.photo_id == Photo.id)
                         .where(Label.status != "rejected", Photo.missing_since.is_(None))).all()
        captions = dict(s.execute(select(Caption.photo_id, Caption.text)
                                  .order_by((Caption.source == "user").asc())).all())  # user caption wins
    by_photo: dict[int, tuple[str, list[str]]] = {}
    for pid, path, name in rows:
        if not wanted or pid in wanted:
            by_photo.setdefault(pid, (path, []))[1].append(name)
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
            report.written.append(str(write_sidecar(path, names, captions.get(pid), hierarchical, force=force)))
        except SidecarConflict as exc:
            report.skipped.append(str(exc))
        except OSError as exc:  # a read-only folder or a vanished disk: one line, go on
            report.skipped.append(f"{path}: {exc.strerror or exc}")
        progress(Progress("exporting", done, len(by_photo), len(report.skipped)))
    return report
