"""The per-machine engine choice: recorded by ``models bench-engines``, followed for fp32 on the CPU only."""

from __future__ import annotations

import json

import pytest

from clipdesk.cli import main
from clipdesk.engine import engine_choice
from clipdesk.engine.backend import make_engine
from clipdesk.engine.clip import ClipEngine, pick_device
from clipdesk.engine.onnx_engine import OnnxEngine
from clipdesk.engine.registry import TINY_ARCH, resolve
from clipdesk.paths import models_dir

TINY = resolve("tiny-random")
MEASURE = engine_choice.measure


@pytest.fixture
def onnx_path(tmp_path, monkeypatch):
    from clipdesk.engine.onnx_export import export_arch

    export_arch(TINY_ARCH, tmp_path / "onnx", with_random_weights=True)
    monkeypatch.setenv("CLIPDESK_ONNX_PATH", str(tmp_path / "onnx"))
    monkeypatch.delenv("CLIPDESK_ENGINE", raising=False)


def test_nothing_recorded_means_the_default_engine(monkeypatch):
    monkeypatch.delenv("CLIPDESK_ENGINE", raising=False)
    assert engine_choice.recorded(TINY_ARCH) is None
    assert isinstance(make_engine(TINY, device="cpu"), ClipEngine)


def test_a_recorded_onnx_win_is_followed_for_fp32_on_the_cpu(onnx_path, monkeypatch):
    assert engine_choice.record(TINY_ARCH, {"torch": 10.0, "onnx": 12.5}) == "onnx"
    saved = json.loads((models_dir() / engine_choice.CHOICE_FILE).read_text())
    assert saved[engine_choice.cpu_model()][TINY_ARCH]["images_per_s"] == {"torch": 10.0, "onnx": 12.5}
    assert isinstance(make_engine(TINY, device="cpu"), OnnxEngine)
    on_auto = OnnxEngine if pick_device("auto") == "cpu" else ClipEngine  # a GPU: the measurement was the CPU's
    assert isinstance(make_engine(TINY, device="auto", precision="fp32"), on_auto)
    assert isinstance(make_engine(TINY, device="cpu", precision="bf16"), ClipEngine)  # not what was measured
    monkeypatch.setenv("CLIPDESK_ENGINE", "torch")  # the override wins
    assert isinstance(make_engine(TINY, device="cpu"), ClipEngine)
    monkeypatch.delenv("CLIPDESK_ENGINE")
    assert isinstance(make_engine(resolve("vit-b-32"), device="cpu"), ClipEngine)  # another arch: not measured
    engine_choice.record(TINY_ARCH, {"torch": 13.0, "onnx": 12.5})  # measured again: torch now
    assert isinstance(make_engine(TINY, device="cpu"), ClipEngine)


def test_without_a_graph_the_choice_is_not_followed(monkeypatch, tmp_path):
    monkeypatch.delenv("CLIPDESK_ENGINE", raising=False)
    monkeypatch.setenv("CLIPDESK_ONNX_PATH", str(tmp_path / "none"))
    engine_choice.record(TINY_ARCH, {"torch": 1.0, "onnx": 2.0})
    assert isinstance(make_engine(TINY, device="cpu"), ClipEngine)  # OnnxEngine would fail: no graph


def test_bench_engines_measures_and_records(capsys, monkeypatch):
    monkeypatch.setattr(engine_choice, "measure", lambda arch, **kw: MEASURE(arch, batch=2, rounds=1, **kw))
    assert main(["--model", "tiny-random", "models", "bench-engines", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["arch"] == TINY_ARCH and set(out["images_per_s"]) == {"torch", "onnx"}
    assert engine_choice.recorded(TINY_ARCH) == out["engine"]
    if out["engine"] == "onnx":  # the graph that makes the choice usable was exported
        from clipdesk.engine.onnx_files import find_graph_dir

        assert find_graph_dir(TINY) is not None
