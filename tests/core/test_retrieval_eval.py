"""``eval retrieval``: known answers from constructed vectors, the encoding path, pairs, labels, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _vecdb import add_photos, unit
from PIL import Image

from clipdesk.cli import main
from clipdesk.engine.base import InputSpec
from clipdesk.errors import Cancelled
from clipdesk.eval import sections
from clipdesk.eval.data import load_folders
from clipdesk.eval.encode import Embedder
from clipdesk.eval.knn import knn_accuracy, labels_knn_section
from clipdesk.eval.near_dup import ORIGINAL, build_near_duplicate_set
from clipdesk.eval.pairs import pairs_section, parse_pairs
from clipdesk.eval.report import format_table
from clipdesk.eval.retrieval import SECTIONS, parse_sections
from clipdesk.jobs import CancelToken
from clipdesk.store.models import Label

KEY = "fake:colour"


class ColourEncoder:
    """An image's vector is its mean colour, normalised: solid colours give vectors the test chooses."""

    key, precision, dim = KEY, "fp32", 3

    def __init__(self) -> None:
        self.batches: list[int] = []

    def input_spec(self) -> InputSpec:
        return InputSpec(16, False)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        self.batches.append(len(pixels))
        mean = pixels.reshape(len(pixels), -1, 3).mean(axis=1)
        return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _solid(path, rgb) -> str:
    Image.new("RGB", (24, 20), rgb).save(path)
    return str(path)


# --- near-duplicates --------------------------------------------------------------------------------------------

def _bench_vectors(bench, flip_sign: float = 1.0) -> np.ndarray:
    """One axis per photo; every view is its original's vector (``flip`` views times ``flip_sign``)."""
    vectors = np.zeros((len(bench.items), len(bench.photos)), np.float32)
    for i, it in enumerate(bench.items):
        vectors[i, it.group] = flip_sign if it.transform == "flip" else 1.0
    return vectors


def test_views_that_keep_their_vector_score_one_and_a_shuffle_does_not():
    bench = build_near_duplicate_set([f"/x/{i}.jpg" for i in range(40)], 8, seed=0)
    perfect = sections.near_duplicates(_bench_vectors(bench), bench)
    assert (perfect["n"], perfect["mAP@100"], perfect["R@1"]) == (8, 1.0, 1.0)
    assert all(m == {"R@1": 1.0, "mAP@100": 1.0} for m in perfect["by_transform"].values())
    # Control: the same vectors given to the wrong items.
    shuffled = _bench_vectors(bench)[np.random.default_rng(0).permutation(len(bench.items))]
    low = sections.near_duplicates(shuffled, bench)
    assert low["mAP@100"] < 0.2 and low["R@1"] < 0.5


def test_near_duplicate_map_by_hand():
    # 6 photos, 2 queries, views crop/flip/jpeg: 12 items. A query's crop and jpeg score 1 (ranks 1, 2), every
    # other item 0, its flip -1: last of the 11 candidates. AP@100 = (1/1 + 2/2 + 3/11) / 3 = 25/33.
    bench = build_near_duplicate_set([f"/x/{i}.jpg" for i in range(6)], 2, seed=0, transforms=("crop", "flip", "jpeg"))
    got = sections.near_duplicates(_bench_vectors(bench, flip_sign=-1.0), bench)
    assert got["mAP@100"] == pytest.approx(round(25 / 33, 4)) and got["R@1"] == 1.0 and got["candidates"] == 12
    # Alone, with the other two views left out, the flip is last of 9 candidates: reciprocal rank 1/9.
    assert got["by_transform"]["flip"] == {"R@1": 0.0, "mAP@100": round(1 / 9, 4)}
    assert got["by_transform"]["crop"] == {"R@1": 1.0, "mAP@100": 1.0}
    # Unreadable items leave the candidates: without both jpeg views, 9 candidates: AP = (1/1 + 2/9) / 2.
    ok = np.array([it.transform != "jpeg" for it in bench.items])
    got = sections.near_duplicates(_bench_vectors(bench, -1.0), bench, ok)
    assert got["mAP@100"] == pytest.approx(round(11 / 18, 4)) and got["candidates"] == 10


# --- text, zero-shot, folders -----------------------------------------------------------------------------------

def test_text_to_image_and_back_by_hand():
    images = np.eye(3, dtype=np.float32)
    # Two captions per photo; photo 2's second caption points at photo 0.
    captions = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], np.float32)
    got = sections.text_to_image(images, captions, np.array([0, 0, 1, 1, 2, 2]))
    assert (got["n"], got["images"], got["R@1"], got["R@5"]) == (6, 3, round(5 / 6, 4), 1.0)
    assert got["image_to_text"]["R@1"] == 1.0  # each photo still has one of its captions first


def test_zero_shot_top1_and_top5():
    classes = np.eye(6, dtype=np.float32)
    photos = np.array([classes[0], classes[1], 0.9 * classes[0] + 0.1 * classes[2]])
    got = sections.zero_shot(photos, classes, np.array([0, 1, 2]))
    assert got == {"n": 3, "classes": 6, "top1": round(2 / 3, 4), "top5": 1.0}


def _folder_vectors():
    # a1, a2 | b1, b2 | a lone c. By hand: AP a1 = 1, a2 = 1/2 (b1 ranks above a1), b1 = 1/2, b2 = 1;
    # c has no other photo of its class, so it is no query. mAP 0.75, R@1 0.5.
    return np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1], [-1, 0]], np.float32), ["a", "a", "b", "b", "c"]


def test_folder_map_as_gpr1200_defines_it(monkeypatch):
    vectors, truth = _folder_vectors()
    expected = {"n": 5, "classes": 3, "queries": 4, "mAP": 0.75, "R@1": 0.5}
    assert sections.folders(vectors, truth) == expected
    monkeypatch.setattr(sections, "CHUNK", 2)  # query chunks must not change the answer
    assert sections.folders(vectors, truth) == expected


def test_folder_tree_loading(tmp_path):
    for rel in ("a/1.jpg", "a/deeper/2.png", "b/3.jpg", "b/notes.txt", "stray.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = load_folders(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found.files] == ["a/1.jpg", "a/deeper/2.png", "b/3.jpg"]
    assert found.truth == ["a", "a", "b"]


# --- encoding ---------------------------------------------------------------------------------------------------

def test_embedder_batches_counts_skips_bad_files_and_cancels(tmp_path):
    good = [_solid(tmp_path / f"{i}.png", (255, 0, 0)) for i in range(3)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    seen = []
    encoder = ColourEncoder()
    bench = build_near_duplicate_set([good[0]], 1, transforms=("exposure",))
    got = Embedder(encoder, 2, lambda d, t: seen.append((d, t))).embed([*good, str(bad), bench.items[1]])
    assert got.ok.tolist() == [True, True, True, False, True] and encoder.batches == [2, 1, 1]
    assert got.errors == [(str(bad), "not an image, or an unsupported format")]
    assert np.allclose(got.vectors[0], [1, 0, 0], atol=1e-4) and np.isnan(got.vectors[3]).all()
    assert seen == [(2, 5), (4, 5), (5, 5)]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        Embedder(encoder, 2, cancel=token).embed(good)


# --- pairs ------------------------------------------------------------------------------------------------------

def test_pairs_file_parsing(tmp_path):
    a, b = _solid(tmp_path / "a.png", (1, 2, 3)), _solid(tmp_path / "b.png", (1, 2, 3))
    (tmp_path / "sub").mkdir()
    c = _solid(tmp_path / "sub" / "c.png", (1, 2, 3))
    text = "\n".join([
        f"{a}\t{b}",  # 1: good, absolute
        "# a comment",  # 2: ignored
        "",  # 3: ignored
        "sub/c.png\tb.png",  # 4: good, relative to the file's folder
        f"{a} {b}",  # 5: a space is no tab
        f"{a}\t{b}\t{c}",  # 6: three paths
        f"{a}\tmissing.png",  # 7
        f"{a}\t{a}",  # 8
        f"{b}\t{a}",  # 9: line 1 reversed
    ])
    (tmp_path / "pairs.tsv").write_text(text + "\n")
    parsed = parse_pairs(tmp_path / "pairs.tsv")
    assert parsed.pairs == [(a, b), (c, b)] and parsed.lines == [1, 4]
    assert parsed.skipped == [
        {"line": 5, "reason": "expected two paths separated by one tab"},
        {"line": 6, "reason": "expected two paths separated by one tab"},
        {"line": 7, "reason": f"no such file: {tmp_path / 'missing.png'}"},
        {"line": 8, "reason": "the same file twice"},
        {"line": 9, "reason": "repeats line 1"},
    ]


def test_pairs_against_the_library_by_hand(tmp_path, library):
    paths = {n: _solid(tmp_path / f"{n}.png", rgb) for n, rgb in
             [("a", (255, 0, 0)), ("b", (250, 30, 0)), ("c", (0, 255, 0)), ("d", (0, 0, 255)), ("x", (0, 0, 255))]}
    add_photos(library, KEY, [{"path": paths[n], "vector": v} for n, v in
                              [("a", [1, 0, 0]), ("b", [0.9, 0.1, 0]), ("c", [0, 1, 0]), ("d", [0, 0, 1])]])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"{paths['a']}\t{paths['b']}\n{paths['c']}\t{paths['x']}\n{paths['a']}\t{broken}\n")
    got = pairs_section(library, KEY, Embedder(ColourEncoder()), parse_pairs(pairs))
    # a and b find each other first. c's scores: b 0.11, then a, d and x tie at 0 and keep candidate order
    # (library rows first), so x is 4th: AP 1/4. x (outside the library, encoded: blue) finds d, then a, b,
    # c tie at 0: c is 4th. mAP = (1 + 1 + 1/4 + 1/4) / 4; R@1 = 2/4.
    assert (got["n"], got["queries"], got["candidates"], got["in_library"], got["encoded"]) == (2, 4, 5, 3, 1)
    assert (got["mAP@100"], got["R@1"]) == (0.625, 0.5)
    reason = f"cannot read {broken}: not an image, or an unsupported format"
    assert got["skipped_lines"] == [{"line": 3, "reason": reason}]
    pairs.write_text("only one path\n")
    empty = pairs_section(library, KEY, Embedder(ColourEncoder()), parse_pairs(pairs))
    assert "no usable pairs" in empty["skipped"] and len(empty["skipped_lines"]) == 1


# --- accepted labels --------------------------------------------------------------------------------------------

def _label_space():
    # Three cats around e0; two dogs around e1 and one photo labelled cat among them. d1 and d2 each see the
    # other dog and the odd cat (k=2): one vote each, and the closer dog wins the tie. The odd cat sees two
    # dogs: wrong. Accuracy 5/6; the majority label (cat, 4 of 6 photos) gives 4/6.
    vectors = np.stack([unit(v) for v in ([1, 0.1, 0], [1, 0, 0.1], [1, 0.05, 0.05],
                                          [0, 1, 0.1], [0, 1, 0.2], [0.1, 1, 0.6])])
    return vectors, [{"cat"}, {"cat", "pet"}, {"cat"}, {"dog"}, {"dog"}, {"cat"}]


def test_knn_accuracy_by_hand():
    vectors, labels = _label_space()
    assert knn_accuracy(vectors, labels, k=2) == pytest.approx((5 / 6, 4 / 6))
    # Control, the clusters' vectors swapped: the three cats now sit together where the dogs were (right);
    # the two dogs and the last cat sit in the old cat cluster: each dog's nearest is that cat, which wins
    # the 1-1 tie, and the cat sees two dogs. 3/6.
    assert knn_accuracy(vectors[[3, 4, 5, 0, 1, 2]], labels, k=2)[0] == pytest.approx(3 / 6)


def test_labels_knn_reads_accepted_labels_only(tmp_path, library, monkeypatch):
    vectors, labels = _label_space()
    ids = add_photos(library, KEY, [{"path": str(tmp_path / f"{i}.jpg"), "vector": v} for i, v in enumerate(vectors)])
    with library.session() as s, s.begin():
        for pid, ls in zip(ids, labels, strict=True):
            s.add_all([Label(photo_id=pid, label=lab, source="auto", status="accepted") for lab in ls])
        s.add(Label(photo_id=ids[5], label="dog", source="auto", status="rejected"))  # never counted
        s.add(Label(photo_id=ids[4], label="cat", source="auto", status="proposed"))  # nor this
    got = labels_knn_section(library, KEY, k=2)
    assert "skipped" in got and "need at least 10 photos" in got["skipped"]  # 6 photos are too few to say anything
    monkeypatch.setattr("clipdesk.eval.knn.MIN_PHOTOS", 3)
    got = labels_knn_section(library, KEY, k=2)
    assert (got["n"], got["labels"], got["k"], got["accuracy"], got["majority_baseline"]) == (6, 3, 2, 0.8333, 0.6667)


# --- the command ------------------------------------------------------------------------------------------------

def test_section_names():
    assert parse_sections("near, text,near") == ("near", "text")
    assert parse_sections("zero_shot,labels_knn") == ("zero", "labels")
    with pytest.raises(ValueError, match="unknown section"):
        parse_sections("text,speed")


def _run(capsys, *args) -> dict:
    code = main(["--model", "tiny-random", "eval", "retrieval", "--json", *map(str, args)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.slow
def test_eval_retrieval_json_end_to_end(capsys, tmp_path, shared_data):
    coco = sorted((shared_data / "coco_mini" / "images").glob("*.jpg"))
    tree = tmp_path / "classes"
    for i, src in enumerate(coco[:6]):
        (tree / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        (tree / f"class{i % 2}" / src.name).write_bytes(src.read_bytes())
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"{coco[0]}\t{coco[1]}\n{coco[2]}\tnope.jpg\n")
    args = ["--limit", 6, "--near-dup-queries", 2, "--batch-size", 256, "--folders", tree, "--pairs", pairs,
            "--data", shared_data]
    report = _run(capsys, *args)
    assert {"model", "model_key", "precision", "warning", "data", *SECTIONS.values()} <= set(report)
    assert report["model"] == "tiny-random" and "say nothing" in report["warning"]
    assert report["text_to_image"]["n"] == 30 and set(report["text_to_image"]) >= {"R@1", "R@5", "R@10"}
    near = report["near_duplicates"]
    assert near["n"] == 2 and near["candidates"] == 12 + 2 * 13 and 0 <= near["mAP@100"] <= 1
    assert report["zero_shot"]["n"] == 6 and report["zero_shot"]["classes"] == 1000
    assert report["folders"]["n"] == 6 and report["folders"]["classes"] == 2 and "mAP" in report["folders"]
    assert report["pairs"]["n"] == 1 and report["pairs"]["encoded"] == 2 and "mAP@100" in report["pairs"]
    assert report["pairs"]["skipped_lines"][0]["line"] == 2
    assert "skipped" in report["labels_knn"]
    table = format_table(report)
    assert table[1] == f"({report['warning']})"
    assert all(any(line.startswith(name) for line in table) for name in SECTIONS.values())
    assert any(line.startswith("  screenshot") for line in table) and "Pairs file: 1 line(s) skipped:" in table
    data = report["data"]
    assert data["near_duplicates"]["seed"] == 0 and len(data["near_duplicates"]["transforms"]) == 13
    assert data["zero_shot"]["files"] == 6 and len(data["text_to_image"]["digest"]) == 16
    # The same command measures the same benchmark; asked for one section, the others say so.
    again = _run(capsys, "--sections", "near", "--limit", 6, "--near-dup-queries", 2, "--data", shared_data)
    assert again["data"]["near_duplicates"]["digest"] == data["near_duplicates"]["digest"]
    assert again["near_duplicates"]["mAP@100"] == near["mAP@100"]
    assert again["text_to_image"] == {"skipped": "not asked for (--sections)"}


def test_bad_options_are_usage_errors(capsys):
    assert main(["--model", "tiny-random", "eval", "retrieval", "--sections", "speed"]) == 2
    assert "unknown section" in capsys.readouterr().err
    assert main(["--model", "tiny-random", "eval", "retrieval", "--transforms", "sharpen"]) == 2
    assert "unknown transform" in capsys.readouterr().err


def test_views_are_never_written(tmp_path, shared_data):
    before = sorted(p.name for p in (shared_data / "coco_mini" / "images").iterdir())
    bench = build_near_duplicate_set(sorted((shared_data / "coco_mini" / "images").glob("*.jpg"))[:3], 1)
    Embedder(ColourEncoder()).embed([it.source for it in bench.items if it.transform != ORIGINAL])
    assert sorted(p.name for p in (shared_data / "coco_mini" / "images").iterdir()) == before
