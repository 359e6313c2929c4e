"""Photos to model-ready batches on the model's device: JPEGs decoded there (nvJPEG on CUDA), the rest on the CPU.

Opt-in, torch engine only. Each batch goes: files read by a thread pool
(Pillow parses only the header: format, mode, EXIF orientation) into pinned
host memory; JPEGs decoded in one ``torchvision.io.decode_jpeg`` call on the
device; crop, resize and the EXIF rotation redone there exactly as the CPU
path does them (:mod:`clipdesk.engine.gpu_resample`); normalised and cast to
the engine's dtype. Anything else (PNG, HEIC, CMYK JPEGs, a file the device
decoder rejects, a broken file) goes to the CPU path's own decoder,
:func:`clipdesk.decode_pool.decode`, so it is decoded, or reported, exactly
as indexing does it. ``device="cpu"`` runs the same code (libjpeg-turbo
decodes), which is how CI covers it.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from clipdesk import decode_pool, imageio
from clipdesk.engine.base import InputSpec
from clipdesk.engine.gpu_resample import draft_scale, reduced, resize_square, upright

# torchvision 0.29 deprecates its image decoders in favour of TorchCodec; the
# warning would come once per batch. Installed once, never around a call (as
# imageio does for Pillow's warnings: catch_warnings is not thread-safe).
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io")

# What the device decoder gets: baseline and progressive YCbCr or greyscale
# JPEGs (MPO: a phone's multi-picture JPEG, its first picture). CMYK/YCCK
# ones convert differently in Pillow, so they stay on the CPU.
_DEVICE_FORMATS = frozenset({"JPEG", "MPO"})
_DEVICE_MODES = frozenset({"RGB", "L"})
# A file not ending in EOI is truncated (or carries a trailer, as motion
# photos do): Pillow refuses the first, a device decoder may grey-fill it.
_EOI = b"\xff\xd9"


@dataclass
class Batch:
    """One batch: the photos that decoded, in input order, and the files that did not."""

    paths: list[str]
    pixels: object  # torch.Tensor N x 3 x S x S, normalised, in the engine's dtype, on the device
    routes: list[str]  # per photo: "device" (decode_jpeg there) or "cpu" (the CPU path's decoder)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), worded as indexing words them


@dataclass
class JpegBytes:
    """A JPEG read for the device decoder: its bytes and what its header says."""

    path: str
    data: object  # 1-D uint8 tensor of the file's bytes, pinned when the device is CUDA
    width: int
    height: int
    scale: int  # the CPU path's reduced-DCT scale
    orientation: int


class DevicePreprocessor:
    """Turns photo paths into normalised batches on ``device`` for one model's :class:`InputSpec`."""

    def __init__(self, spec: InputSpec, mean: Sequence[float], std: Sequence[float], device: str = "cuda",
                 dtype=None, read_threads: int = 4, cpu_workers: int = 0, device_decode: bool = True,
                 decode_bytes: int = 2 << 30) -> None:
        """``cpu_workers``: decode processes for the CPU route (0: in this process, as ``decode_pool`` takes it).

        ``decode_bytes``: the most full-size decoded pixels held on the device
        at once (a batch of 256 12 MP photos would hold 9 GB); a batch decodes
        in parts of about this size, each shrunk before the next.

        ``device_decode=False`` sends every file down the CPU route: the same
        batches from the CPU path's decoder, to compare with.
        """
        import torch

        self.spec = spec
        self.device = torch.device(device)
        self.dtype = dtype or torch.float32
        self.cpu_workers = cpu_workers
        self.device_decode = device_decode
        self.decode_bytes = decode_bytes
        self._mean = torch.tensor(list(mean), device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(list(std), device=self.device).view(1, 3, 1, 1)
        self._pin = self.device.type == "cuda"
        self._readers = ThreadPoolExecutor(max_workers=max(1, read_threads), thread_name_prefix="clipdesk-read")

    @classmethod
    def for_engine(cls, engine, **kwargs) -> DevicePreprocessor:
        """For a loaded :class:`~clipdesk.engine.clip.ClipEngine`: its input, mean/std, device and dtype."""
        import open_clip

        spec = engine.input_spec()  # loads the model
        pre = engine.preprocess
        return cls(spec, pre.get("mean", open_clip.OPENAI_DATASET_MEAN), pre.get("std", open_clip.OPENAI_DATASET_STD),
                   device=engine.device, dtype=engine.dtype, **kwargs)

    def close(self) -> None:
        self._readers.shutdown(wait=True)

    def __enter__(self) -> DevicePreprocessor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def batches(self, paths: Iterable[str], batch_size: int) -> Iterator[Batch]:
        """One :class:`Batch` per ``batch_size`` paths; the next batch's files are read while the caller works."""
        window: deque[list[Future]] = deque()
        chunk: list[str] = []
        for path in paths:
            chunk.append(str(path))
            if len(chunk) == batch_size:
                window.append([self._readers.submit(self.read, p) for p in chunk])
                chunk = []
                if len(window) > 1:
                    yield self._finish([f.result() for f in window.popleft()])
        if chunk:
            window.append([self._readers.submit(self.read, p) for p in chunk])
        while window:
            yield self._finish([f.result() for f in window.popleft()])

    def prepare(self, paths: Sequence[str]) -> Batch:
        """One batch from ``paths``, now."""
        return self._finish(list(self._readers.map(self.read, [str(p) for p in paths])))

    # -- the stages, also timed one by one by bench/gpu_pipeline.py --

    def read(self, path: str) -> JpegBytes | str:
        """The file's bytes and header for the device decoder, or ``path`` alone for the CPU route."""
        import torch

        if not self.device_decode:
            return path
        try:
            _st, data = imageio.read_bytes(path)
            if not data[-4096:].rstrip(b"\0").endswith(_EOI):
                return path
            with imageio.decoding():
                im = imageio.open_image(data)
                if im.format not in _DEVICE_FORMATS or im.mode not in _DEVICE_MODES:
                    return path
                orientation = imageio._orientation_of(im.getexif())  # noqa: SLF001 - the CPU path's own reading
                width, height = im.size
        except Exception:  # noqa: BLE001 - the CPU route reads it again and words the reason as indexing does
            return path
        buf = torch.empty(len(data), dtype=torch.uint8, pin_memory=self._pin)
        buf.numpy()[:] = np.frombuffer(data, np.uint8)
        return JpegBytes(path, buf, width, height, draft_scale(width, height, self.spec.size), orientation)

    def parts(self, jpegs: list[JpegBytes]) -> Iterator[list[JpegBytes]]:
        """``jpegs`` in runs whose decodes fit ``decode_bytes`` (at least one photo each)."""
        part: list[JpegBytes] = []
        held = 0
        for j in jpegs:
            size = j.width * j.height * 3
            if part and held + size > self.decode_bytes:
                yield part
                part, held = [], 0
            part.append(j)
            held += size
        if part:
            yield part

    def decode(self, jpegs: list[JpegBytes]) -> tuple[list, list[JpegBytes]]:
        """(decoded uint8 C x H x W tensors on the device, the JPEGs the device decoder refused)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not jpegs:
            return [], []
        if self.device.type == "cuda":
            # torchvision 0.29 decodes on a private stream that does not wait for this one, into memory the
            # caching allocator may just have freed here while queued kernels still read it (pytorch/vision#9606,
            # corrupted tensors on H100s): let this stream drain first.
            import torch

            torch.cuda.current_stream(self.device).synchronize()
        try:  # one call for the batch: on CUDA, nvJPEG's batched decode
            return list(decode_jpeg([j.data for j in jpegs], mode=ImageReadMode.RGB, device=self.device)), []
        except (RuntimeError, ValueError):  # no partial results: find the files it refuses, one by one
            pass
        decoded, refused = [], []
        for j in jpegs:
            try:
                decoded.append(decode_jpeg(j.data, mode=ImageReadMode.RGB, device=self.device))
            except (RuntimeError, ValueError):
                refused.append(j)
        return decoded, refused

    def squares(self, jpegs: list[JpegBytes], decoded: list):
        """The uint8-valued N x 3 x S x S inputs, in ``jpegs`` order; photos of one size resize as one batch."""
        import torch

        size, squash = self.spec.size, self.spec.squash
        out: list = [None] * len(jpegs)
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, j in enumerate(jpegs):
            groups.setdefault((j.width, j.height, j.scale), []).append(i)
        for (width, height, scale), members in groups.items():
            small = torch.stack([reduced(decoded[i], scale) for i in members])
            for i, square in zip(members, resize_square(small, width, height, scale, size, squash), strict=True):
                out[i] = upright(square, jpegs[i].orientation)
        return torch.stack(out)

    def normalise(self, squares):
        """What ``ClipEngine.encode_pixels`` does to uint8 pixels, on N x 3 x S x S byte values."""
        x = squares.float().div_(255.0)
        return ((x - self._mean) / self._std).to(self.dtype)

    def _cpu(self, paths: list[str]) -> dict[str, tuple[np.ndarray | None, str | None]]:
        found = decode_pool.decode(paths, self.spec.size, self.spec.squash, self.cpu_workers)
        return {path: (info.pixels if info is not None else None, err) for path, info, err in found}

    def _finish(self, read: list[JpegBytes | str]) -> Batch:
        import torch

        # Keyed by object, not path: a list may name one file twice.
        on_device: dict[int, object] = {}
        refused_ids: set[int] = set()
        for part in self.parts([r for r in read if isinstance(r, JpegBytes)]):
            decoded, refused = self.decode(part)
            refused_ids.update(id(j) for j in refused)
            kept = [j for j in part if id(j) not in refused_ids]
            if kept:
                on_device.update(zip((id(j) for j in kept), self.squares(kept, decoded), strict=True))
            del decoded  # before the next part decodes
        cpu = self._cpu([r if isinstance(r, str) else r.path for r in read if id(r) not in on_device])
        paths, routes, squares, errors = [], [], [], []
        for r in read:
            path = r if isinstance(r, str) else r.path
            if id(r) in on_device:
                route, square = "device", on_device[id(r)]
            else:
                pixels, err = cpu[path]
                if pixels is None:
                    errors.append((path, err))
                    continue
                route, square = "cpu", torch.from_numpy(np.array(pixels)).to(self.device).permute(2, 0, 1).double()
            paths.append(path)
            routes.append(route)
            squares.append(square)
        size = self.spec.size
        stacked = torch.stack(squares) if squares else torch.zeros((0, 3, size, size), device=self.device)
        return Batch(paths, self.normalise(stacked), routes, errors)


def encode(engine, pixels) -> np.ndarray:
    """float32 unit vectors of a :class:`Batch`'s ``pixels`` with a loaded torch engine (its inference lane)."""
    import torch

    lock = getattr(engine, "_infer_lock", None) or nullcontext()  # searches take turns with indexing per batch
    with lock, torch.inference_mode():
        out = [engine.model.encode_image(pixels[i : i + engine.batch_size]).float()
               for i in range(0, len(pixels), engine.batch_size)]
    if not out:
        return np.zeros((0, engine.dim), np.float32)
    t = torch.cat(out)
    return (t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)).cpu().numpy().astype(np.float32)
