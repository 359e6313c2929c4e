"""Pretrained models as open_clip defines them: QuickGELU tags, a checkpoint's base tag, hub file names,
URL-only tags, "present" meaning loadable here, and the MCIP presets loaded strictly from their files."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from _fake_hub import build_siglip_like, coco_captions, hub_cache

from clipdesk.engine.clip import ClipEngine
from clipdesk.engine.registry import PRESETS, TINY_ARCH, register_tiny, resolve
from clipdesk.engine.sources import cached_weights, hub_candidates, loadable_here, weight_source, weights_present
from clipdesk.errors import ModelNotAvailable, ModelSpecError
from clipdesk.paths import models_dir


def test_quick_gelu_tags_build_the_quick_gelu_architecture():
    spec = resolve("ViT-B-32/openai")
    assert spec.arch == "ViT-B-32-quickgelu" and open_clip.get_model_config(spec.arch)["quick_gelu"] is True
    assert spec.key != "open_clip:ViT-B-32:openai"  # vectors of the GELU build (before) never share its key
    assert resolve("ViT-B-32/laion2b_s34b_b79k").arch == "ViT-B-32"  # a GELU tag stays GELU
    assert resolve("ViT-L-14-336/openai").arch == "ViT-L-14-336-quickgelu"
    assert resolve("ViT-B-32-quickgelu/openai").arch == "ViT-B-32-quickgelu"
    quick = [(a, t) for a, t in open_clip.list_pretrained() if open_clip.get_pretrained_cfg(a, t).get("quick_gelu")
             and not a.endswith("-quickgelu")]
    assert len(quick) > 20
    for arch, tag in quick:  # every such tag of this open_clip: none is silently built with GELU
        assert resolve(f"{arch}/{tag}").arch == f"{arch}-quickgelu", (arch, tag)


def test_unknown_tags_are_refused_with_the_known_ones():
    with pytest.raises(ModelSpecError, match="Known tags") as exc:
        resolve("ViT-B-32/no_such_tag")
    assert "openai" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ModelSpecError):
        resolve("ViT-B-32-quickgelu/laion2b_s34b_b79k")  # a GELU tag has no QuickGELU weights


def test_hub_entries_with_a_file_name_and_default_names():
    assert hub_candidates("laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K/") == (
        "laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K", ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))
    assert hub_candidates("jienengchen/ViTamin-S/pytorch_model.bin") == (
        "jienengchen/ViTamin-S", ("pytorch_model.safetensors", "pytorch_model.bin"))
    source = weight_source(resolve("ViTamin-S/datacomp1b"))  # a real open_clip entry naming its file
    assert (source.kind, source.repo) == ("hub", "jienengchen/ViTamin-S")
    assert source.filenames[-1] == "pytorch_model.bin"


@pytest.fixture
def extra_tags(monkeypatch):
    """Pretrained tags for the tiny test architecture: a SigLIP-style one and a URL-only one."""
    from open_clip import pretrained

    register_tiny()
    tags = {
        "webli": {"url": "", "hf_hub": "timm/tiny-siglip-like/", "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
                  "interpolation": "bicubic", "resize_mode": "squash"},
        "weburl": {"url": "https://example.org/weights/tiny-v1.safetensors", "hf_hub": "",
                   "mean": open_clip.OPENAI_DATASET_MEAN, "std": open_clip.OPENAI_DATASET_STD,
                   "interpolation": "bicubic", "resize_mode": "shortest"},
    }
    monkeypatch.setitem(pretrained._PRETRAINED, TINY_ARCH, tags)
    return tags


def _tiny_checkpoint(tiny_engine, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tiny_engine.model.state_dict().items()}, str(path))
    return path


def test_a_checkpoint_with_a_base_tag_gets_that_tags_preprocessing(extra_tags, tiny_engine, tmp_path):
    ckpt = _tiny_checkpoint(tiny_engine, tmp_path / "finetune.safetensors")
    tagged = ClipEngine(resolve(f"{TINY_ARCH}/webli:{ckpt}"), device="cpu")
    plain = ClipEngine(resolve(f"{TINY_ARCH}:{ckpt}"), device="cpu")
    assert tagged.input_spec().squash and tuple(tagged.preprocess["mean"]) == (0.5, 0.5, 0.5)
    assert not plain.input_spec().squash and tuple(plain.preprocess["mean"]) == open_clip.OPENAI_DATASET_MEAN
    assert tagged.key != plain.key and tagged.key.endswith("@webli")
    pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert (tagged.encode_pixels(pixels) * plain.encode_pixels(pixels)).sum(1).max() < 0.9999  # other vectors
    with pytest.raises(ModelSpecError):
        resolve(f"{TINY_ARCH}/no_such_tag:{ckpt}")


def test_url_only_tags_download_to_the_models_folder(extra_tags):
    source = weight_source(resolve(f"{TINY_ARCH}/weburl"))
    assert source.kind == "url" and source.url.endswith("tiny-v1.safetensors")
    assert source.path == models_dir() / "tiny-v1.safetensors"
    assert not weights_present(resolve(f"{TINY_ARCH}/weburl"))


def _hub_file(repo: str, name: str, data: bytes = b"x") -> Path:
    root = models_dir() / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text("r1")
    path = root / "snapshots" / "r1" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_present_means_loadable_by_this_install(monkeypatch):
    spec = resolve("vit-b-16")
    path = _hub_file("laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K", "open_clip_pytorch_model.bin")
    assert weights_present(spec) and cached_weights(spec) == path  # torch reads .bin
    monkeypatch.setenv("CLIPDESK_ENGINE", "onnx")  # the packaged app: safetensors only
    assert not weights_present(spec) and cached_weights(spec) is None
    safe = _hub_file("laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K", "open_clip_model.safetensors")
    assert weights_present(spec) and cached_weights(spec) == safe


def test_the_packaged_app_does_not_offer_presets_it_cannot_run(monkeypatch):
    assert all(loadable_here(resolve(n)) is None for n in PRESETS)  # torch runs every preset
    monkeypatch.setenv("CLIPDESK_ENGINE", "onnx")
    assert "PyTorch" in loadable_here(resolve("mcip-vit-l-14-336")) or "ONNX" in loadable_here(resolve("mcip-vit-l-14-336"))
    assert loadable_here(resolve("mcip-so400m")) is not None


def test_models_json_lists_both_mcip_presets_with_url_and_file(capsys):
    from clipdesk.cli import main

    assert main(["--json", "models"]) == 0
    rows = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    for name, file in (("mcip-vit-l-14-336", "MCIP-ViT-L-14-336.pth"),
                       ("mcip-so400m", "MCIP-ViT-SO400M-14-SigLIP-384.pth")):
        assert rows[name]["url"] == f"https://visual-computing.com/files/MCIP/{file}"
        assert rows[name]["file"] == file and rows[name]["weights_present"] is False
    assert rows["mcip-vit-l-14-336"]["arch"] == "ViT-L-14-336-quickgelu"
    assert (rows["mcip-so400m"]["arch"], rows["mcip-so400m"]["base_tag"]) == ("ViT-SO400M-14-SigLIP-384", "webli")


def _state_dict_file(arch: str, path: Path, extra: dict | None = None, drop: str | None = None) -> dict:
    """A plain state dict in a .pth file, as the MCIP authors publish: every key and shape of ``arch``.

    Each tensor is one value broadcast to its shape (stride 0), so a 3.5 GB checkpoint costs a few kB
    on disk; strict loading sees exactly the real names and shapes.
    """
    with torch.device("meta"):
        register_tiny()
        shapes = {k: v.shape for k, v in open_clip.create_model(arch, device="meta").state_dict().items()}
    state = {}
    for name, shape in shapes.items():
        value = 1e-3 * (1 + zlib.crc32(name.encode()) % 97)
        state[name] = torch.full((1,) * len(shape), value).expand(shape) if len(shape) else torch.tensor(value)
    if drop:
        state.pop(drop)
    state.update(extra or {})
    torch.save(state, path)
    return state


@pytest.fixture
def siglip_tokenizer(shared_data, tmp_path):
    folder = build_siglip_like(tmp_path / "tok", coco_captions(shared_data))
    hub_cache(models_dir(), folder)  # where fetch_tokenizer_files puts the tokenizer the weights need


@pytest.mark.slow
@pytest.mark.parametrize("name, size, dim, squash, mean", [
    ("mcip-vit-l-14-336", 336, 768, False, open_clip.OPENAI_DATASET_MEAN),
    ("mcip-so400m", 384, 1152, True, (0.5, 0.5, 0.5)),
])
def test_mcip_presets_load_strictly_with_their_base_tags_configuration(name, size, dim, squash, mean,
                                                                        siglip_tokenizer):
    spec = resolve(name)
    path = Path(spec.checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = _state_dict_file(spec.arch, path)
    assert weights_present(spec)
    engine = ClipEngine(spec, device="cpu", batch_size=1)
    model = engine.model
    some = next(k for k in state if k.startswith("visual.") and state[k].dim() >= 2)
    assert torch.equal(model.state_dict()[some], state[some])  # the file's values, not a random init
    assert (engine.input_spec().size, engine.dim, engine.input_spec().squash) == (size, dim, squash)
    assert tuple(engine.preprocess["mean"]) == tuple(mean)
    if "quickgelu" in spec.arch:
        assert any(type(m).__name__ == "QuickGELU" for m in model.modules())
    assert engine.key.endswith(f"@{spec.base_tag}")


@pytest.mark.parametrize("change, message", [
    ({"drop": "visual.proj"}, "Missing key"),
    ({"extra": {"visual.extra_head.weight": torch.zeros(2, 2)}}, "Unexpected key"),
])
def test_loading_is_strict(change, message, tmp_path):
    path = tmp_path / "tiny.pth"
    _state_dict_file(TINY_ARCH, path, **change)
    with pytest.raises(ModelNotAvailable, match=message) as exc:
        ClipEngine(resolve(f"{TINY_ARCH}:{path}"), device="cpu").model  # noqa: B018
    assert "\n" not in str(exc.value)
    path.unlink()
    _state_dict_file(TINY_ARCH, path)  # control: the complete file loads
    assert ClipEngine(resolve(f"{TINY_ARCH}:{path}"), device="cpu").dim == 64


def test_mcip_checkpoints_download_from_their_url_and_record_a_hash(tmp_path, monkeypatch):
    """The authors publish no checksum: the first download records size and SHA-256, and says so."""
    import functools
    import hashlib
    import threading
    from dataclasses import replace
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from clipdesk.engine import sources, weights
    from clipdesk.engine.url_download import recorded
    from clipdesk.jobs import CancelToken

    served = tmp_path / "served"
    served.mkdir()
    payload = np.random.default_rng(0).bytes(300_000)
    (served / "MCIP-ViT-L-14-336.pth").write_bytes(payload)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/MCIP-ViT-L-14-336.pth"
        spec = replace(resolve("mcip-vit-l-14-336"), url=url)
        seen = []
        path = weights.download_weights(spec, lambda d, t: seen.append((d, t)), CancelToken())
    finally:
        server.shutdown()
    assert path == Path(spec.checkpoint) and path.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload))
    record = recorded(url)
    assert record["sha256"] == hashlib.sha256(payload).hexdigest() and record["size"] == len(payload)
    assert sources.weights_present(spec)


def test_models_download_fetches_now_and_says_where(capsys, monkeypatch):
    from clipdesk.cli import main
    from clipdesk.engine import weights
    from clipdesk.errors import Cancelled

    calls = []

    def fake_download(spec, progress, cancel, on_note=None):
        calls.append(spec.name)
        progress(5, 10)
        progress(10, 10)
        return models_dir() / "w.safetensors"

    monkeypatch.setattr(weights, "download_weights", fake_download)
    assert main(["models", "download", "vit-b-32"]) == 0
    assert calls == ["vit-b-32"] and capsys.readouterr().out.strip().endswith("w.safetensors")
    assert main(["models", "download", "tiny-random"]) == 0  # nothing to fetch
    assert "already present" in capsys.readouterr().out and calls == ["vit-b-32"]

    def interrupted(spec, progress, cancel, on_note=None):
        raise Cancelled("Download cancelled.")

    monkeypatch.setattr(weights, "download_weights", interrupted)
    assert main(["models", "download", "vit-b-32"]) == 130
    assert capsys.readouterr().err.strip() == "clipdesk: Download cancelled."


def test_a_checkpoint_on_disk_is_not_downloaded_again_for_its_tokenizer(monkeypatch, shared_data, tmp_path):
    """The user put the SigLIP MCIP file in place; only the tokenizer files are missing: only they are fetched."""
    from clipdesk.engine import hf_tokenizer, weights

    spec = resolve("mcip-so400m")
    Path(spec.checkpoint).parent.mkdir(parents=True, exist_ok=True)
    Path(spec.checkpoint).write_bytes(b"the user's copy")
    folder = build_siglip_like(tmp_path / "tok", coco_captions(shared_data))
    fetched = []

    def fake_fetch(repo, cache_dir, download=None):
        fetched.append(repo)
        hub_cache(Path(cache_dir), folder, repo=repo)

    monkeypatch.setattr(hf_tokenizer, "fetch_tokenizer_files", fake_fetch)
    monkeypatch.setattr(weights, "_REACHABLE", False)
    assert not weights_present(spec)
    with pytest.raises(ModelNotAvailable, match="tokenizer") as exc:
        weights.download_weights(spec, lambda d, t: None)  # offline: says what is missing, in one line
    assert "\n" not in str(exc.value) and fetched == []
    monkeypatch.setattr(weights, "_REACHABLE", True)
    assert weights.download_weights(spec, lambda d, t: pytest.fail("no weights download")) == Path(spec.checkpoint)
    assert fetched == ["timm/ViT-B-16-SigLIP"] and weights_present(spec)
    assert Path(spec.checkpoint).read_bytes() == b"the user's copy"
