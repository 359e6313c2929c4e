"""Editing the library's labels.yaml, and exporting sidecars from the core."""

from __future__ import annotations

import hashlib

import pytest
from _vecdb import add_photos

from clipdesk.labels.export import export_sidecars
from clipdesk.labels.vocab import USER_FILE, LabelDef, Vocabulary, VocabularyError, load_vocabulary
from clipdesk.labels.vocab_edit import list_labels, normalise, remove_label, restore_label, save_label, validate
from clipdesk.labels.xmp import _read
from clipdesk.store.models import Label


@pytest.fixture
def shipped(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        "labels:\n"
        "  - {name: dog, parent: animal, synonyms: [puppy], descriptors: [a wagging tail, a wet nose]}\n"
        "  - {name: beach, parent: scene, descriptors: [sand and waves]}\n", encoding="utf-8")
    return folder


def states(root, shipped):
    return {e.label.name: e.state for e in list_labels(root, shipped)}


def test_add_edit_hide_revert_and_delete(tmp_path, shipped):
    root = tmp_path / "lib"
    kayak = normalise("  Kayak ", ["a narrow boat ", "", "a double  paddle"], ["Canoe"], "/vehicle/")
    assert kayak == LabelDef("kayak", ("a narrow boat", "a double paddle"), ("canoe",), "vehicle", "user")
    save_label(root, kayak, shipped=shipped)
    vocab = load_vocabulary(root, shipped)
    assert vocab.get("canoe").path == "vehicle/kayak" and vocab.get("kayak").source == "user"
    save_label(root, normalise("dog", ["a wagging tail", "four paws"], ["puppy"], "animal"), replacing="dog",
               shipped=shipped)
    assert load_vocabulary(root, shipped).get("dog").descriptors == ("a wagging tail", "four paws")
    assert states(root, shipped) == {"dog": "edited", "kayak": "user", "beach": "shipped"}
    assert remove_label(root, "beach", shipped) == "hidden"
    assert load_vocabulary(root, shipped).get("beach") is None
    assert states(root, shipped)["beach"] == "hidden"
    assert any("Show again" in m for m in validate(normalise("beach", ["sand"]), root, None, shipped))
    restore_label(root, "beach")
    assert remove_label(root, "dog", shipped) == "reverted"
    assert load_vocabulary(root, shipped).get("dog").descriptors == ("a wagging tail", "a wet nose")
    assert remove_label(root, "kayak", shipped) == "deleted"
    assert states(root, shipped) == {"dog": "shipped", "beach": "shipped"}
    assert (root / (USER_FILE + ".bak")).is_file()


def test_renaming_a_shipped_label_hides_the_old_name(tmp_path, shipped):
    root = tmp_path / "lib"
    save_label(root, normalise("seaside", ["sand and waves"], [], "scene"), replacing="beach", shipped=shipped)
    names = load_vocabulary(root, shipped).names()
    assert "seaside" in names and "beach" not in names


@pytest.mark.parametrize(("label", "replacing", "message"), [
    (normalise("", ["x"]), None, "needs a name"),
    (normalise("cat", []), None, "at least one descriptor"),
    (normalise("cat", [f"d{i}" for i in range(9)]), None, "at most 8"),
    (normalise("cat", ["x" * 130]), None, "must be short"),
    (normalise("cat", ["a", "a"]), None, "twice"),
    (normalise("cat/kitten", ["a"]), None, "use Parent"),
    (normalise("dog", ["a"]), None, "already a label called 'dog'"),
    (normalise("puppy", ["a"]), None, "synonym of 'dog'"),
    (normalise("cat", ["a"], ["beach"]), None, "synonym 'beach'"),
    (normalise("beach", ["a"]), "dog", "already a label called 'beach'"),
    (normalise("cat", ["a"], [], "animal/cat"), None, "its own parent"),
])
def test_validation_messages(tmp_path, shipped, label, replacing, message):
    problems = validate(label, tmp_path / "lib", replacing, shipped)
    assert any(message in p for p in problems), problems
    with pytest.raises(VocabularyError, match=message.split("'")[0]):
        save_label(tmp_path / "lib", label, replacing, shipped)
    assert not (tmp_path / "lib" / USER_FILE).exists()


def test_valid_edits_have_no_problems(tmp_path, shipped):
    assert validate(normalise("dog", ["a wagging tail"], ["puppy"], "animal"), tmp_path, "dog", shipped) == []
    assert validate(normalise("cat", ["whiskers"], ["kitten"], "animal"), tmp_path, None, shipped) == []


def test_export_writes_sidecars_and_never_touches_photos(library, tmp_path):
    photos = []
    for i in range(3):
        p = tmp_path / f"IMG_{i}.jpg"
        p.write_bytes(b"\xff\xd8 photo %d" % i)
        photos.append(p)
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in photos]
    ids = add_photos(library, "m", [{"path": str(p), "vector": [1, i, 0]} for i, p in enumerate(photos)])
    with library.session() as s, s.begin():
        s.add(Label(photo_id=ids[0], label="dog", score=0.3, source="auto", status="proposed"))
        s.add(Label(photo_id=ids[0], label="cat", score=0.3, source="auto", status="rejected"))
        s.add(Label(photo_id=ids[1], label="dog", score=0.3, source="user", status="accepted"))
    (tmp_path / "IMG_1.jpg.xmp").write_text("<html>not a sidecar</html>")  # not XMP: left alone, reported
    seen = []
    report = export_sidecars(library, Vocabulary([LabelDef("dog", ("d",), parent="animal")]), progress=seen.append)
    assert report.written == [str(tmp_path / "IMG_0.jpg.xmp")]
    assert len(report.skipped) == 1 and "not an XMP packet" in report.skipped[0]
    assert _read(tmp_path / "IMG_0.jpg.xmp")[1:] == (["dog"], ["animal|dog"])
    assert not (tmp_path / "IMG_2.jpg.xmp").exists()  # no labels, no sidecar
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in photos] == before
    assert (seen[-1].done, seen[-1].total, seen[-1].errors) == (2, 2, 1)
