"""The device pipeline (engine/gpu_decode.py), run on the CPU as CI can: the CPU path's inputs, EXIF, the CPU route.

On CPU, torchvision decodes with libjpeg-turbo at full size, where the CPU
path decodes at reduced size; the tolerances below are what that difference
measures on real photos (COCO, 4:4:4; a 4:2:0 12 MP-style photo), each with
a control outside them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipdesk.engine.gpu_decode import DevicePreprocessor, JpegBytes, encode
from clipdesk.engine.gpu_resample import model_square
from clipdesk.imageio import read_many, read_photo

# torchvision 0.29 deprecates its decoders (TorchCodec replaces them); the module silences it, pytest re-enables it.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torchvision")
REPO = Path(__file__).resolve().parents[2]
# Measured here (libjpeg-turbo both ways) on COCO as stored and 12 MP 4:2:0 photos, inputs 224 and 64: mean
# |diff| 0.14-0.44 of a byte level, max 11; a bicubic resize of the full decode (the control below) is far
# outside. Chroma-subsampled photos decoded at 1/2 or 1/4 differ more (4:2:2 at 1/4: mean 0.7, max 45): the
# reduced decode keeps chroma at its own resolution where the full one interpolates it.
MEAN_TOLERANCE, RARE_TOLERANCE = 0.6, 4  # mean |diff|; |diff| above this in < 0.5% of the bytes


@pytest.fixture(scope="module")
def dev(tiny_engine):
    with DevicePreprocessor.for_engine(tiny_engine, read_threads=2) as pre:
        yield pre


@pytest.fixture(scope="module")
def cpu(tiny_engine):
    with DevicePreprocessor.for_engine(tiny_engine, read_threads=2, device_decode=False) as pre:
        yield pre


def _squares(pre: DevicePreprocessor, paths) -> np.ndarray:
    """The device route's byte-valued inputs, N x S x S x 3."""
    read = [pre.read(str(p)) for p in paths]
    assert all(isinstance(r, JpegBytes) for r in read)
    decoded, refused = pre.decode(read)
    assert not refused
    return pre.squares(read, decoded).permute(0, 2, 3, 1).numpy()


def _close(ours: np.ndarray, ref: np.ndarray) -> bool:
    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    return diff.mean() < MEAN_TOLERANCE and (diff > RARE_TOLERANCE).mean() < 0.005


@pytest.fixture(scope="module")
def photos(tmp_path_factory, coco_images) -> list[Path]:
    """Six COCO photos (reduced decode at 1/4 and 1/8 for input 64) and a 2000 x 1500 4:2:0 one."""
    coco = coco_images
    big = tmp_path_factory.mktemp("big") / "big.jpg"
    Image.open(coco[6]).convert("RGB").resize((2000, 1500), Image.Resampling.BICUBIC).save(big, quality=90)
    return [*coco[:6], big]


def test_resize_port_is_exact_on_pillows_own_reduced_decode(coco_images):
    """Given the bytes Pillow's reduced decode gives, the torch port reproduces every byte (both pass orders)."""
    for path in (coco_images[2], coco_images[4]):  # a portrait one (vertical pass first in Pillow 13), a landscape one
        for squash in (False, True):
            im = Image.open(path)
            im.draft("RGB", (64, 64))
            drafted = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
            ours = model_square(drafted, 64, squash, 1).permute(1, 2, 0).numpy()
            assert (ours == read_photo(path, 64, squash).pixels).all()


def test_device_route_agrees_with_the_cpu_route(tiny_engine, dev, cpu, photos):
    a, b = dev.prepare(photos), cpu.prepare(photos)
    assert a.routes == ["device"] * len(photos) and b.routes == ["cpu"] * len(photos)
    assert a.paths == b.paths == [str(p) for p in photos] and not a.errors
    ref = np.stack([read_photo(p, 64).pixels for p in photos])
    # The CPU route is the CPU path, byte for byte, normalised as ClipEngine.encode_pixels does.
    assert torch.equal(b.pixels, cpu.normalise(torch.from_numpy(ref).permute(0, 3, 1, 2).double()))
    assert (encode(tiny_engine, b.pixels) == tiny_engine.encode_pixels(ref)).all()
    ours = _squares(dev, photos)
    assert _close(ours, ref)
    va, vb = encode(tiny_engine, a.pixels), encode(tiny_engine, b.pixels)
    assert (va * vb).sum(1).min() >= 0.9999
    # Controls: other photos' vectors; a plain bicubic resize of the full decode (no reduced-decode step).
    assert (va * np.roll(vb, 1, axis=0)).sum(1).min() < 0.9999
    naive = []
    for p in photos:
        full = torch.from_numpy(np.asarray(Image.open(p).convert("RGB")).copy()).permute(2, 0, 1).float()
        side = min(full.shape[1:])
        top, left = (full.shape[1] - side) // 2, (full.shape[2] - side) // 2
        crop = full[None, :, top : top + side, left : left + side]
        small = torch.nn.functional.interpolate(crop, size=(64, 64), mode="bicubic", antialias=True)
        naive.append(small[0].round().clamp(0, 255).permute(1, 2, 0).numpy())
    assert not _close(np.stack(naive), ref)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_the_cpu_path_does(dev, coco_images, tmp_path, orientation):
    source = Image.open(coco_images[0]).convert("RGB")  # 640 x 426: a turn changes the crop
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    source.save(path, quality=92, exif=exif)
    plain = tmp_path / "plain.jpg"
    source.save(plain, quality=92)
    ours, stored = _squares(dev, [path, plain])
    assert dev.read(str(path)).orientation == orientation
    assert _close(ours, read_photo(path, 64).pixels)
    if orientation != 1:  # control: the stored pixels, unturned, are far off
        assert np.abs(ours - stored).mean() > 5 * MEAN_TOLERANCE


def test_other_formats_and_broken_files_take_the_cpu_route(dev, cpu, coco_images, tmp_path):
    png = tmp_path / "photo.png"
    Image.open(coco_images[1]).save(png)
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (120, 90), (0, 255, 255, 0)).save(cmyk, quality=95)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(os.urandom(3000))
    truncated = tmp_path / "truncated.jpg"
    data = coco_images[2].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    missing = tmp_path / "missing.jpg"
    good = coco_images[3]
    paths = [str(p) for p in (png, garbage, good, cmyk, truncated, missing)]
    batch = dev.prepare(paths)
    assert batch.paths == [str(png), str(good), str(cmyk)]
    assert batch.routes == ["cpu", "device", "cpu"]
    expected = {path: err for path, _info, err in read_many(paths, 64) if err}
    assert dict(batch.errors) == expected and len(expected) == 3  # worded as indexing words them
    assert expected[str(missing)] == "vanished during the scan"
    assert torch.equal(batch.pixels[[0, 2]], cpu.prepare([str(png), str(cmyk)]).pixels)


def test_reduced_bench_runs_end_to_end():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_pipeline.py"), "--reduced", "--arch", "clipdesk-tiny-random",
         "--photos", "2", "--agree", "1"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "end to end: 2 photos in" in out and "photos/s" in out and "model only:" in out
    assert "bottleneck: " in out and "agreement with the CPU path" in out and "MISMATCH" not in out
    assert out.rstrip().endswith("OK")
