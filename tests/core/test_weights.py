"""Weights downloads: verification, damaged cache entries, file-name fallback, Xet progress, offline words."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from clipdesk.engine import weights as weights_mod
from clipdesk.engine.registry import resolve
from clipdesk.engine.weights import (
    ChecksumMismatch,
    check_checkpoint,
    device_report,
    download_weights,
    progress_bar_class,
    verify_sha256,
)
from clipdesk.errors import Cancelled, ModelNotAvailable
from clipdesk.jobs import CancelToken
from clipdesk.paths import models_dir


@pytest.fixture(autouse=True)
def hub_answers(monkeypatch):
    monkeypatch.setattr(weights_mod, "_REACHABLE", True)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeHub:
    """The hub client's cache layout and reuse rule: blobs/<etag>, snapshots/<rev>/<name> -> ../../blobs/<etag>.

    Like huggingface_hub, a blob already on disk is linked again instead of downloaded (the etag names it),
    which is why a damaged blob must be deleted along with its link.
    """

    def __init__(self, files: dict[str, bytes], etag: str = "e" * 64) -> None:
        self.files, self.etag, self.downloads = files, etag, []

    def fetch(self, repo, filename, cache_dir, tqdm_class):
        if filename not in self.files:
            raise AssertionError(f"asked for {filename}, which the fake repository does not hold")
        root = Path(cache_dir) / f"models--{repo.replace('/', '--')}"
        blob = root / "blobs" / f"{self.etag}-{filename}"
        pointer = root / "snapshots" / "rev1" / filename
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text("rev1")
        pointer.parent.mkdir(parents=True, exist_ok=True)
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            payload = self.files[filename]
            bar = tqdm_class(total=len(payload), unit="B")
            blob.write_bytes(payload)
            bar.update(len(payload))
            bar.close()
            self.downloads.append(filename)
        if not pointer.exists():
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        return str(pointer)

    def published(self, sha: dict[str, str]):
        from huggingface_hub.errors import EntryNotFoundError

        def published(repo, name):
            if name not in self.files:
                raise EntryNotFoundError(f"{name} not in {repo}")
            return sha[name]

        return published


def test_download_is_verified_against_the_published_hash():
    payload = b"weights" * 1000
    hub, seen = FakeHub({"open_clip_model.safetensors": payload}), []
    path = download_weights(resolve("vit-b-32"), lambda d, t: seen.append((d, t)), fetch=hub.fetch,
                            published=hub.published({"open_clip_model.safetensors": _sha(payload)}))
    assert path.read_bytes() == payload and seen[-1] == (len(payload), len(payload))
    assert "DataComp" in str(path)  # the preset's hub repository


def test_a_damaged_download_deletes_the_blob_too_so_a_retry_downloads_again():
    good, bad = b"the real weights" * 100, b"truncated"
    name = "open_clip_model.safetensors"
    hub = FakeHub({name: bad})
    published = hub.published({name: _sha(good)})
    with pytest.raises(ChecksumMismatch, match="damaged"):
        download_weights(resolve("vit-b-32"), lambda d, t: None, fetch=hub.fetch, published=published)
    assert not [p for p in models_dir().rglob("*") if p.is_file() or p.is_symlink()
                if "blobs" in p.parts or p.name == name]  # neither the link nor the blob is left
    hub.files[name] = good  # the next try gets the real file: it must be downloaded, not relinked
    path = download_weights(resolve("vit-b-32"), lambda d, t: None, fetch=hub.fetch, published=published)
    assert path.read_bytes() == good and hub.downloads == [name, name]


def test_a_kept_blob_would_be_relinked_forever():
    """Control: deleting only the snapshot link leaves the damaged blob, and the hub client relinks it."""
    name = "open_clip_model.safetensors"
    hub = FakeHub({name: b"truncated"})
    first = Path(hub.fetch("laion/x", name, str(models_dir()), progress_bar_class(lambda d, t: None)))
    first.unlink()  # what deleting the returned path alone does
    hub.files[name] = b"the real weights"
    again = Path(hub.fetch("laion/x", name, str(models_dir()), progress_bar_class(lambda d, t: None)))
    assert again.read_bytes() == b"truncated"


def test_falls_back_to_the_pytorch_file_like_open_clip():
    payload = b"bin weights" * 50
    hub = FakeHub({"open_clip_pytorch_model.bin": payload})  # like laion's CoCa repositories: no safetensors
    spec = resolve("vit-b-16")  # no known file list: both names are tried, safetensors first
    path = download_weights(spec, lambda d, t: None, fetch=hub.fetch,
                            published=hub.published({"open_clip_pytorch_model.bin": _sha(payload)}))
    assert path.name == "open_clip_pytorch_model.bin"
    from clipdesk.engine.sources import cached_weights, weights_present

    assert weights_present(spec) and cached_weights(spec) == path


def test_the_torch_free_build_never_downloads_a_file_it_cannot_read(monkeypatch):
    monkeypatch.setenv("CLIPDESK_ENGINE", "onnx")
    hub = FakeHub({"open_clip_pytorch_model.bin": b"x"})
    with pytest.raises(ModelNotAvailable, match="safetensors") as exc:
        download_weights(resolve("vit-b-16"), lambda d, t: None, fetch=hub.fetch,
                         published=hub.published({"open_clip_pytorch_model.bin": _sha(b"x")}))
    assert hub.downloads == [] and "\n" not in str(exc.value)
    with pytest.raises(ModelNotAvailable, match="safetensors"):  # known to hold only a .bin: not even asked
        download_weights(resolve("vit-l-14"), lambda d, t: None, fetch=hub.fetch, published=hub.published({}))


def test_offline_says_so_in_plain_words(monkeypatch):
    monkeypatch.setattr(weights_mod, "_REACHABLE", False)
    with pytest.raises(ModelNotAvailable) as exc:
        download_weights(resolve("vit-b-32"), lambda d, t: None, fetch=FakeHub({}).fetch, published=lambda r, n: "0")
    assert "can't be reached" in str(exc.value) and "checkpoint file" in str(exc.value)
    monkeypatch.setattr(weights_mod, "_REACHABLE", True)  # reachable a moment ago, then the lookup fails

    def no_dns(repo, name):
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(ModelNotAvailable) as exc:
        download_weights(resolve("vit-b-32"), lambda d, t: None, fetch=FakeHub({}).fetch, published=no_dns)
    assert str(exc.value).startswith("The model hub can't be reached") and "\n" not in str(exc.value)


def test_progress_honours_initial_and_never_goes_back():
    seen = []
    bar_class = progress_bar_class(lambda d, t: seen.append((d, t)))
    resumed = bar_class(total=1000, initial=600, unit="B")  # huggingface_hub resuming a download
    resumed.update(100)
    resumed.update(-100)  # http_get rolls back when a server ignores Range
    resumed.update(400)
    assert seen[0] == (600, 1000) and seen[-1] == (1000, 1000)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


class _FakeXet:
    """hf-xet as huggingface_hub's ``xet_get`` drives it: a download group calling the progress callback
    from the transfer with cumulative reports. Like a native extension it may swallow the callback's
    exception; it stops only when the session is aborted."""

    def __init__(self, size: int, steps: int = 10) -> None:
        self.size, self.steps, self.aborted, self.reports = size, steps, False, 0

    def session(self):
        fake = self

        class Group:
            def __init__(self, progress_callback, **_kw):
                self.callback = progress_callback

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def start_download_file(self, info, path):
                for i in range(1, fake.steps + 1):
                    if fake.aborted:
                        raise RuntimeError("xet session aborted")
                    done = fake.size * i // fake.steps
                    report = SimpleNamespace(total_bytes_completed=done, total_transfer_bytes_completed=done * 7 // 10,
                                             total_bytes=fake.size, total_bytes_completion_rate=None,
                                             total_transfer_bytes_completion_rate=None)
                    fake.reports += 1
                    try:
                        self.callback(report, {})
                    except Exception:  # noqa: BLE001 - what a native callback boundary may do
                        pass
                Path(path).write_bytes(b"x" * fake.size)

        return SimpleNamespace(new_file_download_group=lambda **kw: Group(**kw))

    def install(self, monkeypatch):
        from huggingface_hub.utils import _xet

        monkeypatch.setattr(_xet, "refresh_xet_connection_info", lambda **kw: SimpleNamespace(
            endpoint="http://127.0.0.1:9", access_token="t", expiration_unix_epoch=0))
        monkeypatch.setattr(_xet, "get_xet_session", self.session)
        monkeypatch.setattr(_xet, "abort_xet_session", lambda: setattr(self, "aborted", True))

    def fetch(self, tmp_path):
        from huggingface_hub.file_download import xet_get

        def fetch(repo, filename, cache_dir, tqdm_class):
            target = tmp_path / filename
            xet_get(incomplete_path=target, xet_file_data=SimpleNamespace(file_hash="h" * 64, refresh_route="/r"),
                    headers={}, expected_size=self.size, displayed_filename=filename, tqdm_class=tqdm_class)
            return str(target)

        return fetch


def test_xet_progress_is_one_bar_that_reaches_the_end(monkeypatch, tmp_path):
    xet = _FakeXet(size=1000)
    xet.install(monkeypatch)
    seen = []
    path = download_weights(resolve("vit-b-32"), lambda d, t: seen.append((d, t)), fetch=xet.fetch(tmp_path),
                            published=lambda repo, name: _sha(b"x" * 1000))
    assert path.stat().st_size == 1000
    assert seen[-1] == (1000, 1000) and all(t == 1000 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never backwards


def test_xet_with_a_plain_tqdm_class_makes_two_bars(monkeypatch, tmp_path):
    """Control: the class the app passed before (no ``update_transfer``) gets a second, transfer bar."""
    from huggingface_hub.utils._xet_progress_reporting import XetDownloadProgressReporter
    from tqdm.auto import tqdm

    made = []

    class Plain(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            made.append(self)

    XetDownloadProgressReporter(reconstruction_desc="f", total=1000, log_level=30, tqdm_class=Plain).close()
    assert len(made) == 2
    made.clear()

    class Ours(progress_bar_class(lambda d, t: None)):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    XetDownloadProgressReporter(reconstruction_desc="f", total=1000, log_level=30, tqdm_class=Ours).close()
    assert len(made) == 1  # ours has update_transfer: the hub sends both counts to one bar


def test_cancel_stops_a_xet_transfer(monkeypatch, tmp_path):
    xet = _FakeXet(size=1000, steps=50)
    xet.install(monkeypatch)
    token, seen = CancelToken(), []

    def progress(done, total):
        seen.append(done)
        if done >= 200:
            token.cancel()

    with pytest.raises(Cancelled):
        download_weights(resolve("vit-b-32"), progress, token, fetch=xet.fetch(tmp_path),
                         published=lambda repo, name: _sha(b"x" * 1000))
    assert xet.aborted and xet.reports < 50  # the transfer stopped, it did not run to the end
    assert not (tmp_path / "open_clip_model.safetensors").exists()


def test_verify_keeps_a_matching_file(tmp_path):
    other = tmp_path / "f.bin"
    other.write_bytes(b"x")
    verify_sha256(other, _sha(b"x"))
    assert other.exists()
    with pytest.raises(ChecksumMismatch):
        verify_sha256(other, _sha(b"y"))
    assert not other.exists()


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
