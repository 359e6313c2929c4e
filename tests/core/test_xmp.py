"""XMP sidecars: keywords readable, photo untouched, escaping, merging, taking back, captions."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest

from clipdesk.labels.xmp import SidecarConflict, _read, merge_sidecar, read_description, write_sidecar

FOREIGN = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>mine</rdf:li>'
           '</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')


def test_sidecar_has_keywords_and_photo_is_untouched(tmp_path):
    photo = tmp_path / "IMG_1.JPG"
    photo.write_bytes(b"\xff\xd8jpeg bytes")
    before = hashlib.sha256(photo.read_bytes()).hexdigest()
    path = write_sidecar(photo, ["dog", 'a <b> & "c"'], caption="a dog & a ball", hierarchical=["animal|dog"])
    assert path.name == "IMG_1.JPG.xmp"
    assert hashlib.sha256(photo.read_bytes()).hexdigest() == before
    ET.parse(path)  # well-formed despite the hostile label
    ours, subjects, hier = _read(path)
    assert ours and subjects == ["dog", 'a <b> & "c"'] and hier == ["animal|dog"]
    assert "a dog &amp; a ball" in path.read_text(encoding="utf-8")
    write_sidecar(photo, ["dog", "beach"])  # hierarchical not given: those stay as they are
    assert _read(path)[1:] == (["dog", "beach"], ["animal|dog"])  # clipdesk's own "a <b>..." taken back
    write_sidecar(photo, caption="a dog & a ball")  # labels not given: keywords stay
    assert _read(path)[1] == ["dog", "beach"]


def test_foreign_sidecar_is_merged_and_its_keywords_are_never_taken_back(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    foreign = tmp_path / "a.jpg.xmp"
    foreign.write_text(FOREIGN)
    write_sidecar(photo, ["dog", "mine"])  # no force needed: an export merges
    assert _read(foreign)[1] == ["mine", "dog"]
    write_sidecar(photo, [])  # clipdesk has no labels left: only its own "dog" goes
    assert _read(foreign)[1] == ["mine"]
    write_sidecar(photo, ["dog"], force=True)  # force is accepted; it only concerns descriptions
    assert _read(foreign)[1] == ["mine", "dog"]


def test_caption_becomes_description_and_survives_a_label_export(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8not really a jpeg")
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    path = write_sidecar(photo, caption="A dog & a <cat>")
    assert read_description(path) == "A dog & a <cat>" and _read(path)[1] == []
    write_sidecar(photo, ["dog"])  # a later label export keeps the description
    assert read_description(path) == "A dog & a <cat>" and _read(path)[1] == ["dog"]
    write_sidecar(photo, caption="Two dogs")  # clipdesk's own description: replaced
    assert read_description(path) == "Two dogs" and _read(path)[1] == ["dog"]
    write_sidecar(photo, caption="")  # and taken back
    assert read_description(path) is None and _read(path)[1] == ["dog"]
    assert hashlib.sha256(photo.read_bytes()).hexdigest() == digest


def test_a_second_identical_export_does_not_rewrite(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"x")
    first = merge_sidecar(photo, ["dog"], "a dog", ["animal|dog"])
    stamp, data = first.path.stat().st_mtime_ns, first.path.read_bytes()
    again = merge_sidecar(photo, ["dog"], "a dog", ["animal|dog"])
    assert first.changed and not again.changed
    assert first.path.read_bytes() == data and first.path.stat().st_mtime_ns == stamp


def test_not_xmp_is_refused_and_left_alone(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"x")
    (tmp_path / "p.jpg.xmp").write_text("<html><body>not a sidecar</body></html>")
    with pytest.raises(SidecarConflict, match="not an XMP packet"):
        write_sidecar(photo, ["dog"])
    assert (tmp_path / "p.jpg.xmp").read_text() == "<html><body>not a sidecar</body></html>"
