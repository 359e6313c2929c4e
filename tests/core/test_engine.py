"""Engine: registry grammar, deterministic tiny model, checkpoints, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clipdesk.engine import clip as clip_mod
from clipdesk.engine import weights as weights_mod
from clipdesk.engine.clip import ClipEngine, pick_device
from clipdesk.engine.registry import DEFAULT_PRESET, PRESETS, TINY_ARCH, resolve
from clipdesk.errors import ModelNotAvailable, ModelSpecError


def test_resolve_grammar(tmp_path):
    assert resolve(None).name == DEFAULT_PRESET
    tag = resolve("ViT-B-32/laion2b_s34b_b79k")
    assert (tag.arch, tag.pretrained, tag.checkpoint) == ("ViT-B-32", "laion2b_s34b_b79k", None)
    hub = resolve("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert hub.arch == "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    ckpt = resolve(f"ViT-B-32:{tmp_path}/w.safetensors")
    assert ckpt.checkpoint == str(tmp_path / "w.safetensors")
    assert resolve("MCIP-SO400M").checkpoint.endswith("MCIP-ViT-SO400M-14-SigLIP-384.pth")
    assert resolve("mcip-vit-l-14-336").checkpoint.endswith("MCIP-ViT-L-14-336.pth")
    assert PRESETS["tiny-random"].random_init and "TEST ONLY" in PRESETS["tiny-random"].label


@pytest.mark.parametrize("bad", ["NoSuchArch/tag", "NoSuchArch:/x.pt", "ViT-B-16-quickgelu", "  "])
def test_resolve_rejects_unusable_names(bad):
    with pytest.raises(ModelSpecError) as exc:
        resolve(bad)
    assert "\n" not in str(exc.value)


def test_keys_separate_embedding_spaces():
    keys = {spec.key for spec in PRESETS.values()}
    assert len(keys) == len(PRESETS)
    assert resolve("ViT-B-32/openai").key != resolve("ViT-B-32/laion2b_s34b_b79k").key


def test_tiny_model_is_deterministic_and_normalised(tiny_engine):
    again = ClipEngine(resolve("tiny-random"), device="cpu")
    a = tiny_engine.encode_text(["a dog", "a beach at night"])
    b = again.encode_text(["a dog", "a beach at night"])
    np.testing.assert_allclose(a, b, atol=1e-6)  # same weights in every process
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert a.shape == (2, tiny_engine.dim) and not np.allclose(a[0], a[1])


def test_batching_does_not_change_vectors(tiny_engine):
    rng = np.random.default_rng(1)
    size = tiny_engine.input_spec().size
    pixels = rng.integers(0, 255, size=(5, size, size, 3), dtype=np.uint8)
    whole = tiny_engine.encode_pixels(pixels)
    small = ClipEngine(tiny_engine.spec, device="cpu", batch_size=2)
    np.testing.assert_allclose(small.encode_pixels(pixels), whole, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)


def test_identical_images_embed_identically(tiny_engine, tmp_path, coco_images):
    src = Image.open(coco_images[0])
    src.save(tmp_path / "a.png")
    src.save(tmp_path / "b.png")
    v = tiny_engine.encode_files([tmp_path / "a.png", tmp_path / "b.png", coco_images[1]])
    assert float(v[0] @ v[1]) == pytest.approx(1.0, abs=1e-5)
    assert float(v[0] @ v[2]) < float(v[0] @ v[1])


def _save_tiny(engine, path, fmt):
    state = {k: v.detach().clone() for k, v in engine.model.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_local_checkpoint_round_trip(tiny_engine, tmp_path, fmt):
    path = tmp_path / f"tiny.{fmt}"
    _save_tiny(tiny_engine, path, fmt)
    engine = ClipEngine(resolve(f"{TINY_ARCH}:{path}"), device="cpu")
    texts = ["a red car", "two cats"]
    np.testing.assert_allclose(engine.encode_text(texts), tiny_engine.encode_text(texts), atol=1e-5)
    assert engine.key.startswith(f"open_clip:{TINY_ARCH}:file-") and engine.key != tiny_engine.key


def test_changed_checkpoint_changes_the_key(tiny_engine, tmp_path):
    path = tmp_path / "tiny.safetensors"
    _save_tiny(tiny_engine, path, "safetensors")
    before = resolve(f"{TINY_ARCH}:{path}").key
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    first = next(iter(state))
    state[first] = state[first] + 1.0
    save_file(state, str(path))
    assert resolve(f"{TINY_ARCH}:{path}").key != before


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickle_checkpoints_never_execute_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload(str(marker))}, path)
    with pytest.raises(ModelNotAvailable):
        ClipEngine(resolve(f"{TINY_ARCH}:{path}"), device="cpu").model  # noqa: B018 - loading is the point
    assert not marker.exists()  # weights_only=True refused the pickle


def test_missing_weights_give_one_clear_message(monkeypatch):
    monkeypatch.setattr(weights_mod, "_REACHABLE", False)
    with pytest.raises(ModelNotAvailable) as exc:
        ClipEngine(resolve("vit-b-32"), device="cpu").model  # noqa: B018 - loading is the point
    msg = str(exc.value)
    assert "vit-b-32" in msg and "ViT-B-32" in msg
    assert str(clip_mod.models_dir()) in msg  # where it looked
    assert "--model ViT-B-32/datacomp_xl_s13b_b90k:" in msg  # how to give a local file (with its tag's preprocessing)
    assert "\n" not in msg


def test_missing_preset_checkpoint_names_the_file():
    with pytest.raises(ModelNotAvailable) as exc:
        ClipEngine(resolve("mcip-so400m"), device="cpu").model  # noqa: B018 - loading is the point
    msg = str(exc.value)
    assert "MCIP-ViT-SO400M-14-SigLIP-384.pth" in msg and "file not found" in msg
    assert "https://visual-computing.com/files/MCIP/MCIP-ViT-SO400M-14-SigLIP-384.pth" in msg
    assert "--model ViT-SO400M-14-SigLIP-384/webli:" in msg


def test_device_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"
    assert pick_device("cuda:1") == "cuda:1"


def test_weights_present_checks_the_cache_and_files(tmp_path):
    from clipdesk.engine.sources import weights_present
    from clipdesk.paths import models_dir

    spec = resolve("vit-b-32")
    assert not weights_present(spec)
    repo_dir = models_dir() / "models--laion--CLIP-ViT-B-32-DataComp.XL-s13B-b90K"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text("abc123")
    snapshot = repo_dir / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"x")
    assert weights_present(spec)
    assert weights_present(resolve("tiny-random"))
    ckpt = tmp_path / "w.safetensors"
    assert not weights_present(resolve(f"ViT-B-32:{ckpt}"))
    ckpt.write_bytes(b"x")
    assert weights_present(resolve(f"ViT-B-32:{ckpt}"))


def test_engine_is_usable_from_several_threads(tiny_engine):
    import threading

    expected = tiny_engine.encode_text(["a dog"])
    results, errors = [], []

    def work():
        try:
            results.append(tiny_engine.encode_text(["a dog"]))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_prefetch_reports_download_progress_once(monkeypatch):
    import hashlib

    import huggingface_hub

    from clipdesk.engine.sources import weights_present
    from clipdesk.engine.weights import prefetch_weights
    from clipdesk.paths import models_dir

    spec = resolve("vit-b-32")
    calls, progress = [], []
    payload = b"w" * 1000

    def fake_download(repo, name, cache_dir, tqdm_class):
        calls.append((repo, name))
        bar = tqdm_class(total=1000, unit="B")
        bar.update(400)
        bar.update(600)
        bar.close()
        repo_dir = models_dir() / f"models--{repo.replace('/', '--')}"
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text("r1")
        (repo_dir / "snapshots" / "r1").mkdir(parents=True, exist_ok=True)
        (repo_dir / "snapshots" / "r1" / name).write_bytes(payload)
        return str(repo_dir / "snapshots" / "r1" / name)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(weights_mod, "published_sha256", lambda repo, name: hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(weights_mod, "_REACHABLE", True)
    prefetch_weights(spec, lambda done, total: progress.append((done, total)))
    assert calls == [("laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K", "open_clip_model.safetensors")]
    assert progress == [(0, 1000), (400, 1000), (1000, 1000)]
    assert weights_present(spec)
    prefetch_weights(spec, lambda done, total: progress.append((done, total)))
    assert len(calls) == 1  # cached now: nothing to fetch
    monkeypatch.setattr(weights_mod, "_REACHABLE", False)
    prefetch_weights(resolve("vit-b-16"), lambda d, t: None)
    assert len(calls) == 1  # offline: leave the clear error to the loader
