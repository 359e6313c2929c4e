"""Merging into sidecars other tools wrote: every foreign property survives; bad sidecars are left alone.

The foreign sidecars are built here as XML text, shaped like what darktable,
digiKam and Lightroom Classic write. Each test compares the (property path,
value) pairs before and after; the control is the hand-written writer clipdesk
had before, whose output (rebuilt by ``_old_writer``) loses them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _vecdb import add_photos

from clipdesk.labels import xmp
from clipdesk.labels.export import export_sidecars
from clipdesk.labels.vocab import LabelDef, Vocabulary
from clipdesk.store.models import Caption, Label

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DT, CRS = "{http://darktable.sf.net/}", "{http://ns.adobe.com/camera-raw-settings/1.0/}"
XMP, MSP = "{http://ns.adobe.com/xap/1.0/}", "{http://ns.microsoft.com/photo/1.0/}"
DK, DC = "{http://www.digikam.org/ns/1.0/}", "{http://purl.org/dc/elements/1.1/}"
LR = "{http://ns.adobe.com/lightroom/1.0/}"
MWG, AREA = "{http://www.metadataworkinggroup.com/schemas/regions/}", "{http://ns.adobe.com/xmp/sType/Area#}"
OPS = ["rawprepare", "temperature", "highlights", "demosaic", "colorin", "exposure", "channelmixerrgb",
       "filmicrgb", "colorbalancergb", "sharpen", "colorout", "gamma"]
HEAD = ('<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="{tk}">\n <rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n')
TAIL = " </rdf:RDF>\n</x:xmpmeta>\n"


def _history() -> str:
    return "".join(
        f'     <rdf:li darktable:num="{i}" darktable:operation="{op}" darktable:enabled="1" '
        f'darktable:modversion="{i % 7 + 1}" darktable:params="{hashlib.md5(op.encode()).hexdigest()}" '
        f'darktable:multi_name="" darktable:multi_name_hand_edited="0" darktable:multi_priority="0" '
        f'darktable:blendop_version="13" darktable:blendop_params="gz11eJxjYGBgkGAAgRNODGiAEV0ACADmDgY="/>\n'
        for i, op in enumerate(OPS))


DARKTABLE = ('<?xml version="1.0" encoding="UTF-8"?>\n' + HEAD.format(tk="XMP Core 4.4.0-Exiv2") +
             '  <rdf:Description rdf:about=""\n'
             '    xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
             '    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
             '    xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:darktable="http://darktable.sf.net/"\n'
             '   exif:DateTimeOriginal="2024:05:01 10:00:00" xmp:Rating="4" xmpMM:DerivedFrom="IMG_1.jpg"\n'
             '   darktable:import_timestamp="63849000000000000" darktable:change_timestamp="63849000123000000"\n'
             '   darktable:xmp_version="5" darktable:raw_params="0" darktable:auto_presets_applied="1"\n'
             f'   darktable:history_end="{len(OPS)}" darktable:iop_order_version="4"\n'
             '   darktable:history_basic_hash="6f2a" darktable:history_current_hash="77b1">\n'
             '   <darktable:masks_history>\n    <rdf:Seq/>\n   </darktable:masks_history>\n'
             '   <darktable:history>\n    <rdf:Seq>\n' + _history() + '    </rdf:Seq>\n   </darktable:history>\n'
             '   <dc:title>\n    <rdf:Alt>\n     <rdf:li xml:lang="x-default">Low tide</rdf:li>\n    </rdf:Alt>\n'
             '   </dc:title>\n'
             '   <dc:subject>\n    <rdf:Bag>\n     <rdf:li>holiday</rdf:li>\n    </rdf:Bag>\n   </dc:subject>\n'
             '   <lr:hierarchicalSubject>\n    <rdf:Bag>\n     <rdf:li>darktable|format|jpg</rdf:li>\n'
             '     <rdf:li>places|coast</rdf:li>\n    </rdf:Bag>\n   </lr:hierarchicalSubject>\n'
             '  </rdf:Description>\n' + TAIL)

DIGIKAM = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + HEAD.format(tk="XMP Core 4.4.0-Exiv2") +
           '  <rdf:Description rdf:about=""\n'
           '    xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:MicrosoftPhoto="http://ns.microsoft.com/photo/1.0/"\n'
           '    xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
           '    xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmlns:acdsee="http://ns.acdsee.com/iptc/1.0/"\n'
           '    xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"\n'
           '    xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"\n'
           '   xmp:Rating="5" MicrosoftPhoto:Rating="99" digiKam:ColorLabel="3" digiKam:PickLabel="2"\n'
           '   acdsee:categories="&lt;Categories&gt;&lt;Category Assigned=&quot;1&quot;&gt;People&lt;/Category&gt;">\n'
           '   <digiKam:TagsList>\n    <rdf:Seq>\n     <rdf:li>People/Ann</rdf:li>\n     <rdf:li>Places/Beach</rdf:li>\n'
           '    </rdf:Seq>\n   </digiKam:TagsList>\n'
           '   <MicrosoftPhoto:LastKeywordXMP>\n    <rdf:Bag>\n     <rdf:li>People/Ann</rdf:li>\n'
           '     <rdf:li>Places/Beach</rdf:li>\n    </rdf:Bag>\n   </MicrosoftPhoto:LastKeywordXMP>\n'
           '   <lr:hierarchicalSubject>\n    <rdf:Bag>\n     <rdf:li>People|Ann</rdf:li>\n     <rdf:li>Places|Beach</rdf:li>\n'
           '    </rdf:Bag>\n   </lr:hierarchicalSubject>\n'
           '   <dc:subject>\n    <rdf:Bag>\n     <rdf:li>Ann</rdf:li>\n     <rdf:li>Beach</rdf:li>\n    </rdf:Bag>\n'
           '   </dc:subject>\n'
           '   <mwg-rs:Regions rdf:parseType="Resource">\n'
           '    <mwg-rs:AppliedToDimensions stDim:w="4000" stDim:h="3000" stDim:unit="pixel"/>\n'
           '    <mwg-rs:RegionList>\n     <rdf:Bag>\n      <rdf:li>\n       <rdf:Description mwg-rs:Name="Ann" '
           'mwg-rs:Type="Face">\n        <mwg-rs:Area stArea:x="0.51" stArea:y="0.42" stArea:w="0.1" stArea:h="0.2" '
           'stArea:unit="normalized"/>\n       </rdf:Description>\n      </rdf:li>\n     </rdf:Bag>\n'
           '    </mwg-rs:RegionList>\n   </mwg-rs:Regions>\n'
           '   <dc:description>\n    <rdf:Alt>\n     <rdf:li xml:lang="x-default">Ann at the beach, 1987</rdf:li>\n'
           '     <rdf:li xml:lang="de-DE">Ann am Strand, 1987</rdf:li>\n    </rdf:Alt>\n   </dc:description>\n'
           '  </rdf:Description>\n' + TAIL + '<?xpacket end="w"?>')

LIGHTROOM = (HEAD.format(tk="Adobe XMP Core 7.0-c000 1.000000, 0000/00/00-00:00:00        ") +
             '  <rdf:Description rdf:about=""\n'
             '    xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"\n'
             '    xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"\n'
             '    xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/"\n'
             '    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"\n'
             '   xmp:ModifyDate="2024-05-02T10:11:12+02:00" xmp:Rating="2" xmp:Label="Red"\n'
             '   xmpMM:DocumentID="xmp.did:0a1b" xmpMM:InstanceID="xmp.iid:2c3d"\n'
             '   crs:Version="15.0" crs:ProcessVersion="11.0" crs:WhiteBalance="As Shot" crs:Exposure2012="+0.35"\n'
             '   crs:Contrast2012="+12" crs:Highlights2012="-40" crs:Shadows2012="+25" crs:HasCrop="False"\n'
             '   crs:CropTop="0.0125" crs:AlreadyApplied="False">\n'
             '   <crs:ToneCurvePV2012>\n    <rdf:Seq>\n     <rdf:li>0, 0</rdf:li>\n     <rdf:li>128, 140</rdf:li>\n'
             '     <rdf:li>255, 255</rdf:li>\n    </rdf:Seq>\n   </crs:ToneCurvePV2012>\n'
             '   <crs:Look>\n    <rdf:Description crs:Name="Adobe Color" crs:Amount="1"\n'
             '     crs:UUID="B952C231111CD8E0ECCF14B86BAA7077">\n'
             '    <crs:Group>\n     <rdf:Alt>\n      <rdf:li xml:lang="x-default">Profiles</rdf:li>\n     </rdf:Alt>\n'
             '    </crs:Group>\n    <crs:Parameters>\n     <rdf:Description crs:Version="15.0" crs:ProcessVersion="11.0"\n'
             '      crs:ConvertToGrayscale="False"/>\n    </crs:Parameters>\n    </rdf:Description>\n   </crs:Look>\n'
             '   <xmpMM:History>\n    <rdf:Seq>\n     <rdf:li stEvt:action="saved" stEvt:instanceID="xmp.iid:2c3d"\n'
             '      stEvt:when="2024-05-02T10:11:12+02:00" stEvt:softwareAgent="Adobe Photoshop Lightroom Classic 13.0"\n'
             '      stEvt:changed="/metadata"/>\n    </rdf:Seq>\n   </xmpMM:History>\n'
             '   <dc:subject>\n    <rdf:Bag>\n     <rdf:li>beach</rdf:li>\n     <rdf:li>summer</rdf:li>\n    </rdf:Bag>\n'
             '   </dc:subject>\n'
             '   <lr:hierarchicalSubject>\n    <rdf:Bag>\n     <rdf:li>places|beach</rdf:li>\n    </rdf:Bag>\n'
             '   </lr:hierarchicalSubject>\n'
             '  </rdf:Description>\n' + TAIL)

SIDECARS = {"darktable": DARKTABLE, "digikam": DIGIKAM, "lightroom": LIGHTROOM}
LABELS, HIER, CAPTION = ["dog", "beach"], ["animal|dog", "scene|beach"], "A dog on the beach"


def _old_writer(labels, hierarchical, caption) -> str:
    """What the hand-written writer put in a sidecar it replaced (``--force``): clipdesk's fields only."""
    x, rdf = "{adobe:ns:meta/}", RDF
    root = ET.Element(x + "xmpmeta")
    desc = ET.SubElement(ET.SubElement(root, rdf + "RDF"), rdf + "Description",
                         {rdf + "about": "", XMP + "CreatorTool": "clipdesk"})
    for tag, values in ((DC + "subject", labels), (LR + "hierarchicalSubject", hierarchical)):
        bag = ET.SubElement(ET.SubElement(desc, tag), rdf + "Bag")
        for v in values:
            ET.SubElement(bag, rdf + "li").text = v
    ET.SubElement(ET.SubElement(ET.SubElement(desc, DC + "description"), rdf + "Alt"), rdf + "li",
                  {"{http://www.w3.org/XML/1998/namespace}lang": "x-default"}).text = caption
    return ET.tostring(root, encoding="unicode")


def _pairs(path_or_text) -> set:
    text = path_or_text.read_text(encoding="utf-8") if isinstance(path_or_text, Path) else path_or_text
    return xmp.flatten(ET.fromstring(text.encode("utf-8")))


def _simple(root, tag) -> str | None:
    """A simple property in either RDF spelling (attribute of rdf:Description, or element)."""
    for desc in root.iter(RDF + "Description"):
        if tag in desc.attrib:
            return desc.get(tag)
        if desc.find(tag) is not None:
            return desc.find(tag).text
    return None


def _items(root, tag) -> list[str]:
    return [li.text for li in root.iterfind(f".//{tag}/*/{RDF}li")]


def _photo(tmp_path, name="IMG_1.jpg", sidecar: str | bytes | None = None) -> Path:
    photo = tmp_path / name
    photo.write_bytes(b"\xff\xd8\xff\xe0 a photo " + name.encode())
    if sidecar is not None:
        data = sidecar.encode("utf-8") if isinstance(sidecar, str) else sidecar
        xmp.sidecar_path(photo).write_bytes(data)
    return photo


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("tool", SIDECARS)
def test_every_foreign_property_survives_an_export(tmp_path, tool):
    photo = _photo(tmp_path, sidecar=SIDECARS[tool])
    sidecar, photo_sha = xmp.sidecar_path(photo), _sha(photo)
    before = _pairs(SIDECARS[tool])
    lost_by_old_writer = before - _pairs(_old_writer(LABELS, HIER, CAPTION))
    assert len(lost_by_old_writer) > 10  # control: the comparison sees what the old writer dropped

    result = xmp.merge_sidecar(photo, LABELS, CAPTION, HIER)
    after = _pairs(sidecar)
    assert result.changed and before <= after  # every (path, value) another tool wrote, still there
    assert _sha(photo) == photo_sha
    ours, subjects, hierarchical = xmp.read_keywords(sidecar)
    assert ours and set(LABELS) <= set(subjects) and set(HIER) <= set(hierarchical)
    assert subjects[:len(_items(ET.fromstring(SIDECARS[tool]), DC + "subject"))] == \
        _items(ET.fromstring(SIDECARS[tool]), DC + "subject")  # theirs first, in their order
    assert len(subjects) == len(set(subjects))  # "beach" from Lightroom is not doubled

    again = xmp.merge_sidecar(photo, LABELS, CAPTION, HIER)
    assert not again.changed and _pairs(sidecar) == after  # idempotent


def test_darktable_history_rating_and_tags_are_kept(tmp_path):
    photo = _photo(tmp_path, sidecar=DARKTABLE)
    xmp.merge_sidecar(photo, LABELS, CAPTION, HIER)
    root = ET.parse(xmp.sidecar_path(photo)).getroot()
    history = root.findall(f".//{DT}history/{RDF}Seq/{RDF}li")
    assert [li.get(DT + "operation") for li in history] == OPS
    assert all(li.get(DT + "blendop_params") == "gz11eJxjYGBgkGAAgRNODGiAEV0ACADmDgY=" for li in history)
    assert root.find(f".//{DT}masks_history/{RDF}Seq") is not None  # an empty Seq is a property too
    assert _simple(root, XMP + "Rating") == "4" and _simple(root, DT + "history_end") == str(len(OPS))
    assert _items(root, LR + "hierarchicalSubject") == ["darktable|format|jpg", "places|coast", *HIER]
    assert root.find(f".//{LR}hierarchicalSubject/{RDF}Bag") is not None  # still a Bag (digiKam needs one)
    assert xmp.read_description(xmp.sidecar_path(photo)) == CAPTION  # it had none: clipdesk's goes in
    # Control: the old writer's replacement had none of this.
    old = ET.fromstring(_old_writer(LABELS, HIER, CAPTION))
    assert old.findall(f".//{DT}history/{RDF}Seq/{RDF}li") == [] and _simple(old, XMP + "Rating") is None


def test_digikam_tags_ratings_and_description_are_kept(tmp_path):
    photo = _photo(tmp_path, sidecar=DIGIKAM)
    result = xmp.merge_sidecar(photo, LABELS, CAPTION, HIER)
    root = ET.parse(xmp.sidecar_path(photo)).getroot()
    assert _items(root, DK + "TagsList") == ["People/Ann", "Places/Beach"]
    assert _simple(root, MSP + "Rating") == "99" and _simple(root, XMP + "Rating") == "5"
    assert _simple(root, DK + "PickLabel") == "2"
    face = root.find(f".//{MWG}RegionList/{RDF}Bag/{RDF}li")  # a face region, structs three deep
    area = face.find(f".//{MWG}Area")
    assert area is not None and area.get(AREA + "x") == "0.51" and _simple(face, MWG + "Name") == "Ann"
    # digiKam's own description is the user's: kept, and said so.
    assert xmp.read_description(xmp.sidecar_path(photo)) == "Ann at the beach, 1987"
    assert result.notes == ("kept the description another tool wrote (dc:description)",)
    forced = xmp.merge_sidecar(photo, LABELS, CAPTION, HIER, force=True)
    assert forced.changed and xmp.read_description(xmp.sidecar_path(photo)) == CAPTION
    assert ((xmp._tag("Xmp.dc.description"), "[de-DE]"), "Ann am Strand, 1987") in _pairs(xmp.sidecar_path(photo))


def test_lightroom_develop_settings_are_kept(tmp_path):
    photo = _photo(tmp_path, sidecar=LIGHTROOM)
    xmp.merge_sidecar(photo, LABELS, CAPTION, HIER)
    root = ET.parse(xmp.sidecar_path(photo)).getroot()
    assert _simple(root, CRS + "Exposure2012") == "+0.35" and _simple(root, CRS + "CropTop") == "0.0125"
    assert _items(root, CRS + "ToneCurvePV2012") == ["0, 0", "128, 140", "255, 255"]  # commas are not splits
    pairs = _pairs(xmp.sidecar_path(photo))
    assert ((CRS + "Look", CRS + "Parameters", CRS + "ConvertToGrayscale"), "False") in pairs
    assert ((XMP + "Label",), "Red") in pairs and _simple(root, XMP + "Rating") == "2"
    assert _items(root, LR + "hierarchicalSubject") == ["places|beach", *HIER]


def test_only_what_clipdesk_added_is_taken_back(tmp_path):
    photo = _photo(tmp_path, sidecar=LIGHTROOM)
    original = _pairs(LIGHTROOM)
    xmp.merge_sidecar(photo, ["beach", "dog"], CAPTION, ["scene|beach"])  # "beach" was Lightroom's already
    assert xmp.read_keywords(xmp.sidecar_path(photo))[1] == ["beach", "summer", "dog"]
    xmp.merge_sidecar(photo, [], "", [])  # the user rejected everything in clipdesk
    assert xmp.read_keywords(xmp.sidecar_path(photo))[1:] == (["beach", "summer"], ["places|beach"])
    assert _pairs(xmp.sidecar_path(photo)) == original  # back to exactly what Lightroom wrote


def test_export_goes_on_past_malformed_sidecars(library, tmp_path):
    bad = {"IMG_2.jpg": b"this is not XML \x00\x01", "IMG_3.jpg": DARKTABLE.encode()[:len(DARKTABLE) // 2],
           "IMG_4.jpg": b'<?xml version="1.0"?><html><body>a web page</body></html>'}
    photos = [_photo(tmp_path, "IMG_1.jpg", DARKTABLE), *(_photo(tmp_path, n, b) for n, b in bad.items()),
              _photo(tmp_path, "IMG_5.jpg")]
    shas = {p: _sha(p) for p in photos}
    ids = add_photos(library, "m", [{"path": str(p), "vector": [1, i, 0]} for i, p in enumerate(photos)])
    with library.session() as s, s.begin():
        for pid in ids:
            s.add(Label(photo_id=pid, label="dog", score=0.3, source="auto", status="proposed"))
        s.add(Caption(photo_id=ids[0], text="Ein Hund, 猫 и собака", source="user"))
    seen = []
    report = export_sidecars(library, Vocabulary([LabelDef("dog", ("d",), parent="animal")]), progress=seen.append)
    assert report.written == [str(xmp.sidecar_path(photos[0])), str(xmp.sidecar_path(photos[4]))]
    assert len(report.skipped) == 3 and (seen[-1].done, seen[-1].total, seen[-1].errors) == (5, 5, 3)
    for (name, data), reason in zip(bad.items(), report.skipped, strict=True):
        assert reason.startswith(str(xmp.sidecar_path(tmp_path / name))) and "left untouched" in reason
        assert xmp.sidecar_path(tmp_path / name).read_bytes() == data  # byte-identical
    assert "not an XMP packet" in report.skipped[2] and "not well-formed" in report.skipped[0]
    assert _pairs(DARKTABLE) <= _pairs(xmp.sidecar_path(photos[0]))
    assert xmp.read_description(xmp.sidecar_path(photos[0])) == "Ein Hund, 猫 и собака"
    assert {p: _sha(p) for p in photos} == shas  # no photo changed
    assert sorted(f.name for f in tmp_path.iterdir() if f.name.startswith(".")) == []  # no temp files left


@pytest.mark.parametrize("data", [b"", b"\xff\xfe<\x00x\x00", b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>",
                                  b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>',
                                  "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>".encode("latin-1") + b"\xe9"],
                         ids=["empty", "utf16-garbage", "unclosed", "doctype", "trailing-latin1"])
def test_malformed_sidecar_is_an_error_and_stays_byte_identical(tmp_path, data):
    photo = _photo(tmp_path, sidecar=data)
    with pytest.raises(xmp.MalformedSidecar, match="left untouched"):
        xmp.merge_sidecar(photo, ["dog"])
    assert xmp.sidecar_path(photo).read_bytes() == data


def test_what_exiv2_cannot_parse_is_refused_not_emptied(tmp_path):
    # Well-formed XML, but the XMP toolkit requires a namespace on every property: exiv2 logs an error and
    # reads nothing, so a merge that trusted it would replace darktable's whole file with clipdesk's labels.
    odd = DARKTABLE.replace("   <darktable:masks_history>", "   <note>written by a script</note>\n   <darktable:masks_history>")
    photo = _photo(tmp_path, sidecar=odd)
    # exiv2's own reason (a namespace error, or "no XMP found" when its log was captured elsewhere) varies.
    with pytest.raises(xmp.MalformedSidecar, match="exiv2 cannot parse it"):
        xmp.merge_sidecar(photo, ["dog"])
    assert xmp.sidecar_path(photo).read_text() == odd
    structured = DIGIKAM.replace("<rdf:li>Ann</rdf:li>", '<rdf:li rdf:parseType="Resource"><dc:title>Ann</dc:title></rdf:li>')
    photo = _photo(tmp_path, "IMG_2.jpg", structured)
    with pytest.raises(xmp.SidecarConflict, match="subject holds structures"):
        xmp.merge_sidecar(photo, ["dog"])
    assert xmp.sidecar_path(photo).read_text() == structured


def test_qualifiers_survive(tmp_path):
    qualified = (HEAD.format(tk="x") + '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
                 'xmlns:q="http://example.invalid/q/"><dc:creator><rdf:Seq><rdf:li rdf:parseType="Resource">'
                 '<rdf:value>Ann</rdf:value><q:role>photographer</q:role></rdf:li></rdf:Seq></dc:creator>'
                 '</rdf:Description>' + TAIL)
    photo = _photo(tmp_path, sidecar=qualified)
    assert xmp.merge_sidecar(photo, ["dog"]).changed
    assert _pairs(qualified) <= _pairs(xmp.sidecar_path(photo))


def test_the_loss_check_catches_a_library_that_drops_a_property(tmp_path, monkeypatch):
    photo = _photo(tmp_path, sidecar=DARKTABLE)
    real_merge = xmp._merge

    def lossy(xmp_data, *args):  # as if exiv2 had dropped darktable's rating on the way
        del xmp_data["Xmp.xmp.Rating"]
        return real_merge(xmp_data, *args)

    monkeypatch.setattr(xmp, "_merge", lossy)
    with pytest.raises(xmp.SidecarConflict, match=r"would lose 1 properties .*Rating"):
        xmp.merge_sidecar(photo, ["dog"])
    assert xmp.sidecar_path(photo).read_text() == DARKTABLE

    def silent(xmp_data, *args):  # as if exiv2 had written the old packet back unchanged
        changed, notes = real_merge(xmp_data, *args)
        return {**changed, "Xmp.dc.subject": ["holiday", "dog", "never set"]}, notes

    monkeypatch.setattr(xmp, "_merge", silent)
    with pytest.raises(xmp.SidecarConflict, match="did not take"):
        xmp.merge_sidecar(photo, ["dog"])
    assert xmp.sidecar_path(photo).read_text() == DARKTABLE


def test_unicode_labels_and_captions_round_trip(tmp_path):
    photo = _photo(tmp_path, "Ölbild 猫.jpg", DARKTABLE)
    labels = ["Ölfarbe", "猫", "🐕 dog", 'type="Bag"', "a, b", "x & <y>"]
    caption = 'lang="fr" Zürich — 夜\nsecond line, "quoted"'
    xmp.merge_sidecar(photo, labels, caption, [f"misc|{v}" for v in labels])
    _, subjects, hierarchical = xmp.read_keywords(xmp.sidecar_path(photo))
    assert subjects == ["holiday", *labels] and hierarchical[2:] == [f"misc|{v}" for v in labels]
    assert xmp.read_description(xmp.sidecar_path(photo)) == caption
    assert not xmp.merge_sidecar(photo, labels, caption, [f"misc|{v}" for v in labels]).changed


def test_old_clipdesk_sidecars_and_bare_packets_merge(tmp_path):
    old = ('<?xml version=\'1.0\' encoding=\'utf-8\'?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/" '
           'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
           'xmlns:clipdesk="https://clipdesk.invalid/ns/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:RDF>'
           '<rdf:Description rdf:about="" xmp:CreatorTool="clipdesk" clipdesk:generated="true"><dc:subject><rdf:Bag>'
           '<rdf:li>cat</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')
    photo = _photo(tmp_path, "a.jpg", old)
    xmp.merge_sidecar(photo, ["dog"])
    pairs = _pairs(xmp.sidecar_path(photo))
    assert xmp.read_keywords(xmp.sidecar_path(photo))[1] == ["cat", "dog"]  # unknown origin: kept
    assert ((XMP + "CreatorTool",), "clipdesk") in pairs
    assert not any("generated" in p[0][0] for p in pairs)  # the old whole-file mark is gone
    bare = ('<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
            'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="1"/></rdf:RDF>')  # no x:xmpmeta, no header
    photo = _photo(tmp_path, "b.jpg", bare)
    xmp.merge_sidecar(photo, ["dog"])
    assert _pairs(bare) <= _pairs(xmp.sidecar_path(photo))


def test_a_seq_another_tool_chose_stays_a_seq(tmp_path):
    seq = DARKTABLE.replace("<rdf:Bag>\n     <rdf:li>darktable|format|jpg", "<rdf:Seq>\n     <rdf:li>darktable|format|jpg")
    seq = seq.replace("places|coast</rdf:li>\n    </rdf:Bag>", "places|coast</rdf:li>\n    </rdf:Seq>")
    photo = _photo(tmp_path, sidecar=seq)
    xmp.merge_sidecar(photo, LABELS, None, HIER)
    root = ET.parse(xmp.sidecar_path(photo)).getroot()
    assert root.find(f".//{LR}hierarchicalSubject/{RDF}Seq") is not None and _pairs(seq) <= _pairs(xmp.sidecar_path(photo))


def test_the_photo_is_never_opened(tmp_path, monkeypatch):
    photo = _photo(tmp_path, sidecar=DIGIKAM)
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(os.fspath(p)) or real_open(p, *a, **k))
    xmp.merge_sidecar(photo, LABELS, CAPTION, HIER)
    assert opened and str(photo) not in opened and all(p.endswith((".xmp", ".tmp")) for p in opened)


def test_special_files_are_left_alone(tmp_path):
    target = tmp_path / "elsewhere.xmp"
    target.write_text(DARKTABLE)
    photo = _photo(tmp_path, "link.jpg")
    xmp.sidecar_path(photo).symlink_to(target)
    with pytest.raises(xmp.SidecarConflict, match="symbolic link"):
        xmp.merge_sidecar(photo, ["dog"])
    assert target.read_text() == DARKTABLE and xmp.sidecar_path(photo).is_symlink()
    if hasattr(os, "mkfifo"):
        fifo_photo = _photo(tmp_path, "fifo.jpg")
        os.mkfifo(xmp.sidecar_path(fifo_photo))
        with pytest.raises(xmp.SidecarConflict, match="not a regular file"):  # and no hang on open
            xmp.merge_sidecar(fifo_photo, ["dog"])


def test_a_sidecar_saved_meanwhile_by_another_tool_wins(tmp_path, monkeypatch):
    photo = _photo(tmp_path, sidecar=DARKTABLE)
    real_verify = xmp._verify
    newer = DARKTABLE.replace('xmp:Rating="4"', 'xmp:Rating="5"') + "\n"

    def darktable_saves(*args):
        real_verify(*args)
        xmp.sidecar_path(photo).write_text(newer)

    monkeypatch.setattr(xmp, "_verify", darktable_saves)
    with pytest.raises(xmp.SidecarConflict, match="changed while"):
        xmp.merge_sidecar(photo, ["dog"])
    assert xmp.sidecar_path(photo).read_text() == newer
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")] == []


def test_a_crash_mid_write_leaves_the_old_sidecar_whole(tmp_path):
    photo = _photo(tmp_path, sidecar=DARKTABLE)
    # The process dies after writing the temp file but before swapping it in (kill -9, power cut).
    code = ("import os, sys; from clipdesk.labels import xmp\n"
            "os.fsync = lambda fd: os._exit(9)\n"
            "xmp.merge_sidecar(sys.argv[1], ['dog'], 'a caption')\n")
    done = subprocess.run([sys.executable, "-c", code, str(photo)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    assert xmp.sidecar_path(photo).read_text() == DARKTABLE
    leftovers = [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".IMG_1.jpg.xmp.")  # hidden, and whole XMP
    assert _pairs(DARKTABLE) <= _pairs(leftovers[0])
