"""The label eval harness: known answers from constructed vectors, and the CLI on a few real images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from _vecdb import FakeEncoder

from clipdesk.labels.eval import (
    DESCRIPTORS,
    EvalSet,
    evaluate,
    load_descriptors,
    load_set,
    margins,
    precision_at_coverage,
)


def e(i: int, dim: int = 6) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[i] = 1
    return v


def _fake(tmp_path):
    classes = {"n1": "cat", "n2": "dog", "n3": "car"}
    files = [tmp_path / "cat.jpg", tmp_path / "dog.jpg", tmp_path / "car.jpg"]
    texts = {
        "a photo of a cat": e(0), "a photo of a dog": e(1), "a photo of a car": e(2),
        # The car's plain prompt misses its photo; its descriptors find it.
        "a photo of a car, which has four wheels": e(3),
        "a photo of a car, which has headlights": e(3) + 0.5 * e(2),
    }
    images = {str(files[0]): e(0), str(files[1]): e(1), str(files[2]): e(3) + 0.1 * e(0)}
    return FakeEncoder("fake", texts, images), EvalSet(files, ["n1", "n2", "n3"], classes)


def test_known_accuracy_and_descriptors_beat_baseline(tmp_path):
    engine, evalset = _fake(tmp_path)
    descriptors = {"n3": ["four wheels", "headlights"]}
    result = evaluate(engine, evalset, descriptors, batch_size=2)
    assert result["images"] == 3 and result["classes"] == 3 and result["descriptor_coverage"] == 1
    assert result["baseline"]["top1"] == pytest.approx(2 / 3)  # the car photo is taken for a cat
    assert result["descriptors"]["top1"] == pytest.approx(1.0)
    assert result["baseline"]["top5"] == pytest.approx(1.0)  # 3 classes: top-5 holds all
    assert engine.text_calls[-2:] == ["a photo of a car, which has four wheels", "a photo of a car, which has headlights"]


def test_precision_at_coverage_for_a_constructed_ordering():
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    correct = np.array([1, 1, 1, 0, 1, 0, 0, 1, 0, 0], bool)
    # Shuffled input: the function sorts by confidence itself.
    perm = np.random.default_rng(0).permutation(10)
    p = precision_at_coverage(confidence[perm], correct[perm])
    assert p[100] == pytest.approx(0.5)
    assert p[50] == pytest.approx(0.8)
    assert p[40] == pytest.approx(0.75)
    assert p[30] == p[20] == p[10] == 1.0


def test_margin_is_top1_minus_top2():
    scores = np.array([[0.1, 0.5, 0.3], [0.9, 0.2, 0.85]])
    np.testing.assert_allclose(margins(scores), [0.2, 0.05], atol=1e-6)


def test_duplicate_class_names_stay_apart_by_wnid(tmp_path):
    names = {"a.JPEG": "crane", "b.JPEG": "crane", "c.JPEG": "tench"}
    wnids = {"a.JPEG": "n02012849", "b.JPEG": "n03126707", "c.JPEG": "n01440764"}
    (tmp_path / "labels.json").write_text(json.dumps(names))
    (tmp_path / "wnids.json").write_text(json.dumps(wnids))
    for f in names:
        (tmp_path / f).write_bytes(b"x")
    s = load_set(tmp_path, limit=2)
    assert len(s.classes) == 3 and s.truth == ["n02012849", "n03126707"]


def test_shipped_descriptors_are_keyed_by_real_wnids(shared_data):
    wnids = set(json.loads((shared_data / "imagenet_sample" / "wnids.json").read_text()).values())
    raw = yaml.safe_load(DESCRIPTORS.read_text(encoding="utf-8"))
    desc = load_descriptors()
    assert len(desc) >= 100
    assert set(desc) <= wnids
    for wnid, entry in raw.items():
        assert entry["name"], wnid
        assert 3 <= len(entry["descriptors"]) <= 5, wnid


def test_cli_eval_on_twenty_real_images(capsys):
    from clipdesk.cli import main

    assert main(["eval", "labels", "--model", "tiny-random", "--device", "cpu", "--limit", "20", "--batch-size", "256", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 20 and out["classes"] == 1000
    assert out["descriptor_coverage"] >= 100
    for method in ("baseline", "descriptors"):
        assert 0 <= out[method]["top1"] <= out[method]["top5"] <= 1
        assert set(out[method]["precision_at_coverage"]) == {str(c) for c in range(10, 101, 10)}
