"""The shipped label vocabulary and the library's own labels.yaml on top."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clipdesk.labels.vocab import VocabularyError, load_vocabulary

SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "labels"
PARENTS = {
    "scene", "object", "animal", "food", "event", "activity", "weather",
    "time", "people", "document", "vehicle", "plant", "art",
}


@pytest.fixture(scope="module")
def vocab():
    return load_vocabulary(shipped=SHIPPED)


def test_shipped_files_exist_and_example_is_gone():
    names = {p.name for p in SHIPPED.glob("*.yaml")}
    assert "example.yaml" not in names
    assert {"scenes.yaml", "objects.yaml", "animals.yaml", "food.yaml",
            "people_events.yaml", "weather_time.yaml", "documents.yaml"} <= names


def test_shipped_files_document_the_parent_set():
    for path in SHIPPED.glob("*.yaml"):
        header = path.read_text(encoding="utf-8").split("labels:")[0]
        match = re.search(r"#\s*Parents \(fixed set\):\s*(.+)", header)
        assert match, f"{path.name} does not document the parent set"
        documented = {p.strip(" .") for p in match.group(1).split(",")}
        assert documented == PARENTS, path.name


def test_at_least_200_labels(vocab):
    assert len(vocab) >= 200
    assert all(label.source == "shipped" for label in vocab.labels)


def test_names_unique_and_lower_case(vocab):
    names = vocab.names()
    assert len(names) == len(set(names))
    for name in names:
        assert name == name.lower() == name.strip(), name
        assert name


def test_descriptors_are_short_and_not_the_name(vocab):
    for label in vocab.labels:
        assert 3 <= len(label.descriptors) <= 8, label.name
        assert len(set(label.descriptors)) == len(label.descriptors), label.name
        for text in label.descriptors:
            assert len(text) <= 80, (label.name, text)
            assert text.strip().lower() != label.name, label.name
            assert text.strip().lower() not in {f"a {label.name}", f"an {label.name}", f"a photo of a {label.name}"}


def test_parents_are_from_the_documented_set(vocab):
    for label in vocab.labels:
        assert label.parent in PARENTS, (label.name, label.parent)
        assert label.path == f"{label.parent}/{label.name}"


def test_synonyms_never_name_another_label(vocab):
    names = set(vocab.names())
    seen: dict[str, str] = {}
    for label in vocab.labels:
        for synonym in label.synonyms:
            assert synonym not in names, (label.name, synonym)
            assert synonym not in seen, (label.name, synonym, seen.get(synonym))
            seen[synonym] = label.name


@pytest.mark.parametrize(
    "name",
    ["receipt", "screenshot", "whiteboard", "id card", "handwritten note", "business card",
     "menu", "ticket", "invoice", "map", "presentation slide", "book page", "sign"],
)
def test_document_labels_present(vocab, name):
    label = vocab.get(name)
    assert label is not None and label.name == name
    assert label.parent == "document"


@pytest.mark.parametrize(
    "name",
    ["beach", "mountain", "forest", "city street", "kitchen", "office", "car", "bicycle", "laptop",
     "dog", "cat", "bird", "horse", "pizza", "cake", "sushi", "wedding", "birthday party", "concert",
     "graduation", "hiking", "swimming", "skiing", "cooking", "snow", "rain", "fog", "sunset",
     "night", "golden hour", "portrait", "group photo", "selfie", "baby"],
)
def test_core_labels_present(vocab, name):
    assert name in vocab.names()


def test_dog_moved_from_example_into_animals(vocab):
    dog = vocab.get("puppy")
    assert dog is not None and dog.name == "dog" and dog.path == "animal/dog"
    assert "a wagging tail" in dog.descriptors
    assert "name: dog" in (SHIPPED / "animals.yaml").read_text(encoding="utf-8")


def test_user_file_adds_replaces_and_disables(tmp_path):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "labels.yaml").write_text(
        "labels:\n"
        "  - name: Grandma's Garden\n"
        "    parent: scene\n"
        "    synonyms: [nana garden]\n"
        "    descriptors: [a red brick wall with roses, a green wooden bench]\n"
        "  - name: dog\n"
        "    parent: animal\n"
        "    descriptors: [a small white terrier, a red collar]\n"
        "  - name: receipt\n"
        "    disabled: true\n",
        encoding="utf-8",
    )
    shipped = load_vocabulary(shipped=SHIPPED)
    vocab = load_vocabulary(library, shipped=SHIPPED)

    added = vocab.get("grandma's garden")
    assert added is not None and added.source == "user" and added.path == "scene/grandma's garden"
    assert vocab.get("nana garden") is added

    dog = vocab.get("dog")
    assert dog.source == "user"
    assert dog.descriptors == ("a small white terrier", "a red collar")
    assert vocab.names().count("dog") == 1

    assert vocab.get("receipt") is None
    assert "receipt" not in vocab.names()
    assert len(vocab) == len(shipped)  # one added, one hidden, one replaced in place


def test_library_without_user_file_is_just_shipped(tmp_path):
    assert load_vocabulary(tmp_path, shipped=SHIPPED).names() == load_vocabulary(shipped=SHIPPED).names()


@pytest.mark.parametrize(
    "text",
    [
        "labels:\n  - name: kite\n    parent: object\n",
        "labels:\n  - name: kite\n    descriptors: []\n",
        "labels:\n  - parent: object\n    descriptors: [a diamond of fabric]\n",
        "labels:\n  - name: '  '\n    descriptors: [a diamond of fabric]\n",
        "labels:\n  name: kite\n  descriptors: [a diamond of fabric]\n",
        "- name: kite\n  descriptors: [a diamond of fabric]\n",
        "labels: kite\n",
        "labels:\n  - name: kite\n    descriptors: [a diamond of fabric\n",
        "labels:\n\t- name: : kite\n",
    ],
    ids=["no-descriptors", "empty-descriptors", "no-name", "blank-name", "labels-not-list",
         "top-level-list", "labels-scalar", "bad-yaml-bracket", "bad-yaml-tab"],
)
def test_malformed_user_file_names_the_file(tmp_path, text):
    library = tmp_path / "lib"
    library.mkdir()
    user = library / "labels.yaml"
    user.write_text(text, encoding="utf-8")
    with pytest.raises(VocabularyError) as info:
        load_vocabulary(library, shipped=SHIPPED)
    assert str(user) in str(info.value)


def test_duplicate_shipped_label_is_an_error(tmp_path):
    shipped = tmp_path / "labels"
    shipped.mkdir()
    entry = "labels:\n  - name: kite\n    parent: object\n    descriptors: [a, b, c]\n"
    (shipped / "a.yaml").write_text(entry, encoding="utf-8")
    (shipped / "b.yaml").write_text(entry, encoding="utf-8")
    with pytest.raises(VocabularyError, match="kite"):
        load_vocabulary(shipped=shipped)
