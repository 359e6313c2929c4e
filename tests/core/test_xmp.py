"""XMP sidecars: keywords readable, photo untouched, escaping, merge and refusal."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest

from clipdesk.labels.xmp import SidecarConflict, _read, read_description, write_sidecar


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
    write_sidecar(photo, ["beach"])
    assert _read(path)[1] == ["dog", 'a <b> & "c"', "beach"]


def test_foreign_sidecar_is_not_clobbered(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    foreign = tmp_path / "a.jpg.xmp"
    foreign.write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                       '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>mine</rdf:li>'
                       '</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')
    with pytest.raises(SidecarConflict):
        write_sidecar(photo, ["dog"])
    assert "mine" in foreign.read_text()
    write_sidecar(photo, ["dog"], force=True)
    assert _read(foreign)[1] == ["mine", "dog"]


def test_caption_becomes_description_and_survives_a_label_export(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8not really a jpeg")
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    path = write_sidecar(photo, caption="A dog & a <cat>")
    assert read_description(path) == "A dog & a <cat>" and _read(path)[1] == []
    write_sidecar(photo, ["dog"])  # a later label export keeps the description
    assert read_description(path) == "A dog & a <cat>" and _read(path)[1] == ["dog"]
    write_sidecar(photo, caption="Two dogs")
    assert read_description(path) == "Two dogs" and _read(path)[1] == ["dog"]
    assert hashlib.sha256(photo.read_bytes()).hexdigest() == digest
