"""XMP sidecars through exiv2: clipdesk's keywords and caption merged into what other tools wrote.

The sidecar is ``<name>.<ext>.xmp`` (darktable's convention): ``IMG_1.JPG`` and
``IMG_1.CR2`` can sit side by side without sharing one ``IMG_1.xmp``. The photo
itself is never opened: exiv2 is only ever handed the sidecar's bytes.

An export merges, as digiKam does. clipdesk owns ``dc:subject`` and
``lr:hierarchicalSubject`` items it added, the ``x-default`` ``dc:description``
it wrote, and its own ``clipdesk:`` properties, which record what it added so a
later export can take back a label the user has since rejected. Everything else
(darktable's history, digiKam's tags, Lightroom's develop settings, ratings) is
kept, and a keyword another tool wrote is never removed. Before a merged sidecar
replaces the old one (atomically, via a temp file and ``os.replace``), both are
flattened to (property path, value) pairs and every foreign pair must still be
there; a sidecar that is not XMP, or that exiv2 cannot rewrite without loss,
raises a ``SidecarConflict`` and stays byte-identical.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import stat
import threading
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

import exiv2

from clipdesk.errors import ClipdeskError

NS = {
    "x": "adobe:ns:meta/", "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/", "lr": "http://ns.adobe.com/lightroom/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/", "clipdesk": "https://clipdesk.invalid/ns/1.0/",
}
SUBJECT, HIER, DESC = "Xmp.dc.subject", "Xmp.lr.hierarchicalSubject", "Xmp.dc.description"
# What clipdesk added, so that only those are ever taken back; the caption by digest, because a
# plain XmpText value that happens to start with "type=" would be read by exiv2 as an array marker.
OURS_SUBJECT, OURS_HIER, OURS_DESC = "Xmp.clipdesk.subjects", "Xmp.clipdesk.hierarchicalSubjects", "Xmp.clipdesk.descriptionSha256"
LEGACY_MARK = "Xmp.clipdesk.generated"  # the hand-written writer's whole-file mark; dropped on the next merge
MAX_BYTES = 64 << 20  # darktable's longest histories are a few MB; a bigger "sidecar" is something else
# exiv2 only recognises an XMP file by its first bytes (an xpacket or <x:xmpmeta>, 80+ bytes), so a
# valid packet that starts otherwise (bare rdf:RDF, a comment, a BOM) gets this in front of its root.
_FRAME = b'<?xml version="1.0" encoding="UTF-8"?>\n<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_ROOTS = {f"{NS['x']} xmpmeta", f"{NS['rdf']} RDF"}
_LOCK = threading.Lock()  # exiv2's XMP toolkit and namespace registry are process-wide and not thread-safe
_capture = threading.local()

exiv2.XmpProperties.registerNs(NS["clipdesk"], "clipdesk")


def _keep_exiv2_quiet(record: logging.LogRecord) -> bool:
    """While a merge runs, exiv2's messages become part of its error instead of lines on stderr."""
    sink = getattr(_capture, "messages", None)
    if sink is None:
        return True
    sink.append(record.getMessage())
    return False


logging.getLogger("exiv2").addFilter(_keep_exiv2_quiet)  # once, at import, not from a worker thread


class SidecarConflict(ClipdeskError):
    """A sidecar clipdesk could not merge into; it was left exactly as it was."""

    exit_code = 2


class MalformedSidecar(SidecarConflict):
    """The file at the sidecar's path is not an XMP packet (not XML, truncated, another root)."""


@dataclass(frozen=True)
class SidecarResult:
    path: Path
    changed: bool  # False: it already said all this, and was not rewritten
    notes: tuple[str, ...] = ()  # e.g. a description another tool wrote, kept


def sidecar_path(photo: Path) -> Path:
    return Path(photo).with_name(Path(photo).name + ".xmp")


@contextmanager
def _exiv2(path: Path):
    """Serialise exiv2 calls and turn its errors (and logged complaints) into a ``SidecarConflict``."""
    with _LOCK:
        _capture.messages = messages = []
        try:
            yield messages
        except exiv2.Exiv2Error as exc:
            raise SidecarConflict(f"{path}: exiv2 cannot read or rewrite it ({exc.args[-1]}); left untouched.") from exc
        finally:
            _capture.messages = None


def _load(path: Path) -> tuple[bytes, os.stat_result] | None:
    """The sidecar's bytes, or None when there is none; never follows a link or opens a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        what = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or exc
        raise SidecarConflict(f"{path}: {what}; left alone.") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SidecarConflict(f"{path} is not a regular file; left alone.")
        if st.st_size > MAX_BYTES:
            raise SidecarConflict(f"{path} is larger than {MAX_BYTES >> 20} MB; not an XMP sidecar clipdesk will merge.")
        return f.read(MAX_BYTES + 1), st


def _frame(data: bytes, path: Path) -> tuple[bytes, ET.Element]:
    """Check that ``data`` is one XMP packet; return it as exiv2 will recognise it, and its tree."""
    start: list[int] = []

    def on_start(name, _attrs):
        if not start:
            if name not in _ROOTS:
                raise MalformedSidecar(f"{path}: not an XMP packet (root <{name.split()[-1]}>); left untouched.")
            start.append(parser.CurrentByteIndex)

    def no_doctype(*_args):  # XMP has none; refusing it also rules out entity expansion
        raise MalformedSidecar(f"{path}: an XML DOCTYPE in an XMP sidecar; left untouched.")

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler, parser.StartDoctypeDeclHandler = on_start, no_doctype
    try:
        data.decode("utf-8")  # XMP is Unicode; the frame says UTF-8, so it has to be
        parser.Parse(data, True)
        root = ET.fromstring(data)
    except (expat.ExpatError, ET.ParseError, UnicodeDecodeError) as exc:
        raise MalformedSidecar(f"{path}: not well-formed XMP ({exc}); left untouched.") from exc
    return _FRAME + data[start[0]:], root


def _open(data: bytes | None, path: Path):
    """An exiv2 image over the sidecar's bytes (or a new, empty one); call inside ``_exiv2``."""
    if data is None:
        image = exiv2.ImageFactory.create(exiv2.ImageType.xmp)
    else:
        image = exiv2.ImageFactory.open(data)
        image.readMetadata()
    return image


def _items(xmp, key: str, path: Path | None = None) -> list[str] | None:
    if key not in xmp:
        return None
    datum = xmp[key]
    value = datum.value()
    if datum.typeId() in (exiv2.TypeId.xmpBag, exiv2.TypeId.xmpSeq, exiv2.TypeId.xmpAlt):
        return [datum.toString(i) for i in range(datum.count())]
    if datum.typeId() == exiv2.TypeId.xmpText and not value.xmpArrayType() and not value.xmpStruct():
        return [datum.toString()]  # a sloppy writer's plain string: keep it as the first item
    raise SidecarConflict(f"{path}: its {key.split('.', 1)[1]} holds structures, not keywords; left untouched.")


def _langs(xmp) -> dict[str, str]:
    if DESC not in xmp:
        return {}
    value = xmp[DESC].getValue()
    if xmp[DESC].typeId() == exiv2.TypeId.langAlt:
        return dict(value.items())
    return {"x-default": xmp[DESC].toString()}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _set_array(xmp, key: str, values: list[str], kind=exiv2.TypeId.xmpBag) -> None:
    if key in xmp:
        del xmp[key]
    if values:
        value = exiv2.XmpArrayValue(kind)
        for v in values:
            value.read(v)  # an array item is taken verbatim (no "type=" parsing, no comma splitting)
        xmp[key] = value


def _merge_keywords(old: list[str], ours_before: list[str], wanted: list[str]) -> tuple[list[str], list[str]]:
    """New keyword list and new record: drop our old ones no longer wanted, add the missing wanted ones."""
    wanted = list(dict.fromkeys(wanted))
    stale = set(ours_before) - set(wanted)
    kept = [v for v in dict.fromkeys(old) if v not in stale]
    added = [v for v in wanted if v not in kept]
    record = [v for v in wanted if v in added or v in ours_before]
    return kept + added, record


def _merge(xmp, labels, hierarchical, caption, force, path: Path) -> tuple[dict[str, object], list[str]]:
    """Apply the merge to ``xmp``; returns the owned values it changed (to check the result) and notes."""
    notes, changed = [], {}
    for key, record_key, values in ((SUBJECT, OURS_SUBJECT, labels), (HIER, OURS_HIER, hierarchical)):
        if values is None:
            continue
        old, before = _items(xmp, key, path) or [], _items(xmp, record_key, path) or []
        new, record = _merge_keywords(old, before, list(values))
        if new != old:
            seq = key in xmp and xmp[key].typeId() == exiv2.TypeId.xmpSeq  # a Seq another tool chose stays one
            _set_array(xmp, key, new, exiv2.TypeId.xmpSeq if seq else exiv2.TypeId.xmpBag)
            changed[key] = new
        if record != before:
            _set_array(xmp, record_key, record)
            changed[record_key] = record
    if caption is not None:
        langs = _langs(xmp)
        current = langs.get("x-default", "")
        ours = not current or (OURS_DESC in xmp and xmp[OURS_DESC].toString() == _digest(current))
        if caption == current or (not caption and not ours):
            pass  # it already says that, or clipdesk has no caption and the one there is another tool's
        elif not ours and not force:
            notes.append("kept the description another tool wrote (dc:description)")
        else:
            langs.pop("x-default", None)
            langs = {"x-default": caption, **langs} if caption else langs
            if DESC in xmp:
                del xmp[DESC]
            if langs:  # other languages stay as they were
                value = exiv2.LangAltValue()
                for lang, text in langs.items():
                    value.read(f'lang="{lang}" {text}')  # the text after the language is taken verbatim
                xmp[DESC] = value
            if OURS_DESC in xmp:
                del xmp[OURS_DESC]
            if caption:
                xmp[OURS_DESC] = _digest(caption)  # hex digits: safe as a plain XmpText
            changed[DESC] = caption or None
    if changed and LEGACY_MARK in xmp:
        del xmp[LEGACY_MARK]
    return changed, notes


def _owned(path: tuple[str, ...], changed: set[str]) -> bool:
    """Whether a flattened property path is one this merge may change."""
    head, desc = path[0], _tag(DESC)
    if head.startswith("{" + NS["clipdesk"]) or (head in changed and head != desc):
        return True
    return desc in changed and head == desc and path[1:2] in ((), ("[x-default]",))


def _tag(key: str) -> str:
    _, prefix, name = key.split(".", 2)
    return f"{{{exiv2.XmpProperties.ns(prefix)}}}{name}"


def flatten(root: ET.Element) -> set[tuple[tuple[str, ...], str]]:
    """Every (property path, value) pair of an XMP tree, the same whichever RDF spelling was used.

    Attribute and element forms, ``rdf:parseType="Resource"`` and nested
    ``rdf:Description`` structures all flatten alike; an array gives its kind and
    its items (``[n]``, or ``[lang]`` in an Alt). Steps are ``{namespace URI}name``.
    """
    out: set[tuple[tuple[str, ...], str]] = set()
    rdf = f"{{{NS['rdf']}}}"
    syntax = {rdf + a for a in ("about", "parseType", "resource", "nodeID", "ID", "datatype")}
    lang = "{http://www.w3.org/XML/1998/namespace}lang"

    def fields(node, path):
        for name, value in node.attrib.items():
            if name not in syntax and name != lang:
                out.add(((*path, name), value))
        for child in node:
            prop(child, (*path, child.tag))

    def prop(el, path, item_lang=False):
        kids, attrs = list(el), [a for a in el.attrib if a not in syntax and a != lang]
        if el.get(lang) and not item_lang:
            out.add(((*path, "?lang"), el.get(lang)))
        if kids and kids[0].tag in (rdf + "Bag", rdf + "Seq", rdf + "Alt"):
            out.add((path, kids[0].tag[len(rdf):]))
            for i, li in enumerate(kids[0].iterfind(rdf + "li"), 1):
                alt_lang = kids[0].tag == rdf + "Alt" and li.get(lang)
                prop(li, (*path, f"[{alt_lang or i}]"), bool(alt_lang))
        elif kids and kids[0].tag == rdf + "Description":
            out.add((path, "struct"))
            fields(kids[0], path)
        elif el.get(rdf + "parseType") == "Resource" or attrs or kids:
            out.add((path, "struct"))
            fields(el, path)
        else:
            out.add((path, el.get(rdf + "resource", el.text or "")))

    top = root if root.tag == rdf + "RDF" else root.find(rdf + "RDF")
    for desc in top.iterfind(rdf + "Description") if top is not None else ():
        fields(desc, ())
    return out


def _verify(out: bytes, root: ET.Element | None, want: dict[str, object], path: Path) -> None:
    """Refuse a rewrite that lost a foreign property, or that exiv2 silently failed to make."""
    image = _open(out, path)  # kept in a name: the metadata below belongs to it
    check = image.xmpData()
    for key, value in want.items():
        got = _langs(check).get("x-default") if key == DESC else _items(check, key, path) or []
        if got != value:
            raise SidecarConflict(f"{path}: exiv2 could not rewrite it ({key} did not take); left untouched.")
    if root is not None:
        changed = {_tag(k) for k in want}
        lost = sorted(p for p in flatten(root) - flatten(ET.fromstring(out)) if not _owned(p[0], changed))
        if lost:
            raise SidecarConflict(f"{path}: rewriting it would lose {len(lost)} properties another tool wrote "
                                  f"(e.g. {'/'.join(lost[0][0])}); left untouched.")


def _replace(path: Path, data: bytes, before: os.stat_result | None) -> None:
    """Write ``data`` to a temp file beside ``path``, flush it to disk, then swap it in."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never write through a file or link someone left at the temp name; 0o666 less the umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the rename must not reach the disk before the bytes do
        if before is not None:
            os.chmod(tmp, stat.S_IMODE(before.st_mode))
        # Another tool saved it meanwhile: its version wins, and clipdesk's waits for the next export.
        now = os.lstat(path) if os.path.lexists(path) else None
        if (now and (now.st_ino, now.st_size, now.st_mtime_ns)) != (before and (before.st_ino, before.st_size,
                                                                                before.st_mtime_ns)):
            raise SidecarConflict(f"{path} changed while clipdesk was merging into it; left as it is now.")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def merge_sidecar(photo_path, labels=None, caption: str | None = None, hierarchical=None,
                  force: bool = False) -> SidecarResult:
    """Merge clipdesk's keywords and caption into ``<photo>.xmp`` (created when missing).

    Args:
        photo_path: The photo; only its name is used, the file is never opened.
        labels: Keywords for ``dc:subject``; None leaves the keywords alone. Ones
            clipdesk added before and that are not in ``labels`` are taken back.
        caption: The ``x-default`` ``dc:description``; None leaves it alone, ""
            takes back clipdesk's own. A description another tool wrote is kept
            (and a note returned) unless ``force``.
        hierarchical: ``lr:hierarchicalSubject`` paths (``parent|name``), like ``labels``.
        force: Replace a description another tool wrote with ``caption``.

    Returns:
        The sidecar's path, whether it was rewritten, and notes for the user.

    Raises:
        SidecarConflict: The sidecar could not be merged into (``MalformedSidecar``
            when it is not XMP); it was left byte-identical.
    """
    path = sidecar_path(Path(photo_path))
    try:
        loaded = _load(path)
        data, before = loaded if loaded is not None else (None, None)
        framed, root = _frame(data, path) if data is not None else (None, None)
        with _exiv2(path) as messages:
            image = _open(framed, path)
            xmp = image.xmpData()
            if root is not None and not xmp.count() and flatten(root):  # exiv2 gave up on it quietly
                raise MalformedSidecar(f"{path}: exiv2 cannot parse it ({'; '.join(messages) or 'no XMP found'}); "
                                       "left untouched.")
            want, notes = _merge(xmp, labels, hierarchical, caption, force, path)
            if not want:  # nothing of ours changes: the file keeps its bytes and its mtime
                return SidecarResult(path, False, tuple(notes))
            # exiv2 derives Exif/IPTC from a sidecar's XMP on reading and copies them back on writing,
            # which would resurrect a property the merge removed; a sidecar holds XMP alone.
            image.clearExifData()
            image.clearIptcData()
            image.writeMetadata()
            out = bytes(image.io().data())
            _verify(out, root, want, path)
        _replace(path, out, before)
    except OSError as exc:  # a read-only folder, a full disk: one line for the report
        raise SidecarConflict(f"{path}: {exc.strerror or exc}; left as it was.") from exc
    return SidecarResult(path, True, tuple(notes))


def write_sidecar(photo_path, labels=None, caption: str | None = None, hierarchical=None, force: bool = False) -> Path:
    """``merge_sidecar`` for callers that only want the path (the captions CLI, older code)."""
    return merge_sidecar(photo_path, labels, caption, hierarchical, force).path


def _read_xmp(path: Path, read):
    """``read(xmp_data)`` on a sidecar, inside the lock and while its exiv2 image is alive."""
    path = Path(path)
    loaded = _load(path)
    if loaded is None:
        raise SidecarConflict(f"{path}: no such sidecar.")
    framed, _ = _frame(loaded[0], path)
    with _exiv2(path):
        image = _open(framed, path)
        return read(image.xmpData())


def read_description(path: Path) -> str | None:
    """A sidecar's ``dc:description`` (its x-default entry, else the first)."""
    langs = _read_xmp(path, _langs)
    return langs.get("x-default", next(iter(langs.values()), None))


def read_keywords(path: Path) -> tuple[bool, list[str], list[str]]:
    """(clipdesk has written to it, ``dc:subject`` items, ``lr:hierarchicalSubject`` items)."""
    def read(xmp):
        ours = any(d.key().startswith("Xmp.clipdesk.") for d in xmp)
        return ours, _items(xmp, SUBJECT, path) or [], _items(xmp, HIER, path) or []

    return _read_xmp(path, read)


_read = read_keywords  # the name tests elsewhere import
