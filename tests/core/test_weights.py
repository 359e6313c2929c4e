"""Weights download verification and checkpoint checks (first-run dialog's core)."""

from __future__ import annotations

import hashlib

import pytest

from clipdesk.engine.registry import resolve
from clipdesk.engine.weights import (
    ChecksumMismatch,
    check_checkpoint,
    device_report,
    download_weights,
    verify_sha256,
)


def _fake_fetch(payload: bytes, tmp_path):
    def fetch(repo, filename, cache_dir, tqdm_class):
        bar = tqdm_class(total=len(payload))
        target = tmp_path / repo.replace("/", "--") / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
        bar.update(len(payload))
        return str(target)

    return fetch


def test_download_is_verified_against_the_published_hash(tmp_path):
    payload = b"weights" * 1000
    seen = []
    path = download_weights(resolve("vit-b-32"), lambda d, t: seen.append((d, t)), fetch=_fake_fetch(payload, tmp_path),
                            published=lambda repo, name: hashlib.sha256(payload).hexdigest())
    assert path.read_bytes() == payload and seen[-1] == (len(payload), len(payload))
    assert "DataComp" in str(path)  # the preset's hub repository


def test_a_damaged_download_is_deleted(tmp_path):
    with pytest.raises(ChecksumMismatch, match="damaged"):
        download_weights(resolve("vit-b-32"), lambda d, t: None, fetch=_fake_fetch(b"truncated", tmp_path),
                         published=lambda repo, name: hashlib.sha256(b"the real file").hexdigest())
    assert not list(tmp_path.rglob("open_clip_model.safetensors"))
    other = tmp_path / "f.bin"
    other.write_bytes(b"x")
    verify_sha256(other, hashlib.sha256(b"x").hexdigest())  # a match keeps it
    assert other.exists()


def test_checkpoint_check(tmp_path, tiny_engine):
    from safetensors.torch import save_file

    good, bad = tmp_path / "clip.safetensors", tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_engine.model.state_dict().items()}, str(good))
    save_file({"layer.weight": tiny_engine.model.logit_scale.detach().reshape(1)}, str(bad))
    assert check_checkpoint(good) is None
    assert "no CLIP" in check_checkpoint(bad)
    assert "not found" in check_checkpoint(tmp_path / "absent.safetensors")
    (tmp_path / "notes.txt").write_text("x")
    assert "not a checkpoint" in check_checkpoint(tmp_path / "notes.txt")


def test_device_report_says_why():
    line, gpu = device_report()
    assert line.startswith("GPU used" if gpu else "Runs on the CPU:") and len(line) > 25
