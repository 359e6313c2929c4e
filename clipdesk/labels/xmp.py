"""Opt-in XMP sidecars: labels as keywords other photo tools can read.

The sidecar is ``<name>.<ext>.xmp`` (darktable's convention): ``IMG_1.JPG``
and ``IMG_1.CR2`` can sit side by side without sharing one ``IMG_1.xmp``.
The photo file itself is only ever read (never opened for writing).

A sidecar written by clipdesk (``clipdesk:generated="true"``) is merged:
its keywords are kept and the new ones added. A sidecar from another tool is
left alone and ``SidecarConflict`` raised, unless ``force=True``, in which
case it is replaced (its keywords are merged in first, so none are lost).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from clipdesk.errors import ClipdeskError

NS = {
    "x": "adobe:ns:meta/", "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/", "lr": "http://ns.adobe.com/lightroom/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/", "clipdesk": "https://clipdesk.invalid/ns/1.0/",
}
for _p, _u in NS.items():
    ET.register_namespace(_p, _u)


class SidecarConflict(ClipdeskError):
    exit_code = 2


def sidecar_path(photo: Path) -> Path:
    return photo.with_name(photo.name + ".xmp")


def _q(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{NS[prefix]}}}{name}"


def read_description(path: Path) -> str | None:
    """A sidecar's ``dc:description`` (its x-default entry, else the first)."""
    root = ET.parse(path).getroot()
    items = list(root.iterfind(f".//{_q('dc:description')}//{_q('rdf:li')}"))
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    chosen = next((li for li in items if li.get(lang) == "x-default"), items[0] if items else None)
    return None if chosen is None else chosen.text or ""


def _read(path: Path) -> tuple[bool, list[str], list[str]]:
    root = ET.parse(path).getroot()
    desc = root.find(f".//{_q('rdf:Description')}")
    ours = desc is not None and desc.get(_q("clipdesk:generated")) == "true"
    def items(tag):
        return [li.text or "" for li in root.iterfind(f".//{_q(tag)}//{_q('rdf:li')}")]
    return ours, items("dc:subject"), items("lr:hierarchicalSubject")


def _bag(parent, tag: str, values: list[str], kind: str = "rdf:Bag") -> None:
    bag = ET.SubElement(ET.SubElement(parent, _q(tag)), _q(kind))
    for v in values:
        li = ET.SubElement(bag, _q("rdf:li"))
        li.text = v
        if kind == "rdf:Alt":
            li.set("{http://www.w3.org/XML/1998/namespace}lang", "x-default")


def write_sidecar(photo_path, labels=(), caption: str | None = None, hierarchical=(), force: bool = False) -> Path:
    """Write or merge ``<photo>.xmp``; returns its path.

    ``caption`` becomes ``dc:description`` (x-default); without one, a
    description already in the sidecar is kept, so exporting labels and
    exporting captions can happen in either order.
    """
    path = sidecar_path(Path(photo_path))
    subjects, hier = list(labels), list(hierarchical)
    if path.exists():
        ours, old_s, old_h = _read(path)
        if not ours and not force:
            raise SidecarConflict(f"{path} was written by another tool; not replacing it (use force).")
        subjects = list(dict.fromkeys(old_s + subjects))
        hier = list(dict.fromkeys(old_h + hier))
        if caption is None:
            caption = read_description(path)
    root = ET.Element(_q("x:xmpmeta"))
    rdf = ET.SubElement(root, _q("rdf:RDF"))
    desc = ET.SubElement(rdf, _q("rdf:Description"), {_q("rdf:about"): "", _q("xmp:CreatorTool"): "clipdesk",
                                                      _q("clipdesk:generated"): "true"})
    if subjects:
        _bag(desc, "dc:subject", subjects)
    if hier:
        _bag(desc, "lr:hierarchicalSubject", hier)
    if caption:
        _bag(desc, "dc:description", [caption], "rdf:Alt")
    tmp = path.with_name(path.name + ".tmp")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return path
