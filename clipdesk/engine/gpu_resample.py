"""The CPU path's crop and resize (``imageio._model_input``), redone in torch on any device.

The CPU path decodes a JPEG at 1/2, 1/4 or 1/8 scale (libjpeg's reduced
DCT), crops the centre square in those coordinates and resizes it with
Pillow's BICUBIC (``reducing_gap=3.0``). nvJPEG only decodes at full size,
so :func:`reduced` stands in for the reduced decode with a box average of
the same size (libjpeg-turbo's reduced IDCTs are the means of the full
IDCT's pixels), then :func:`resize_square` ports Pillow's resampling: the
same filter coefficients in Pillow's 22-bit fixed point, the two passes in
the order this Pillow runs them, uint8 rounding after each. Integer
arithmetic, exact in float64: given Pillow's reduced decode it reproduces
every byte, so only the decode can differ (chroma most: a reduced decode
keeps subsampled chroma at its own resolution, a full one interpolates it).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

_PRECISION_BITS = 22  # Pillow's Resample.c: 32 - 8 - 2
_BICUBIC_SUPPORT = 2.0
_REDUCING_GAP = 3.0
_DRAFT_SCALES = (8, 4, 2, 1)


def draft_scale(width: int, height: int, target: int) -> int:
    """The reduced-DCT scale Pillow's ``draft("RGB", (target, target))`` picks for a JPEG."""
    scale = min(width // target, height // target)
    return next((s for s in _DRAFT_SCALES if scale >= s), 1)


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5  # Pillow's bicubic_filter
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@lru_cache(maxsize=256)
def coefficients(in_size: int, in0: float, in1: float, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc``: (indices, integer weights), each out x ksize.

    Unused taps point at a valid pixel with weight 0.
    """
    in0, in1 = np.float32(in0), np.float32(in1)  # Pillow parses the box as C floats
    scale = float(np.float32(in1 - in0)) / out_size
    filterscale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    idx = np.zeros((out_size, ksize), np.int64)
    weights = np.zeros((out_size, ksize), np.float64)
    for xx in range(out_size):
        center = float(in0) + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = np.arange(xmax)
        w = _bicubic((taps + xmin - center + 0.5) / filterscale)
        total = w.sum()
        if total != 0.0:
            w = w / total
        fixed = np.where(w < 0, -0.5 + w * (1 << _PRECISION_BITS), 0.5 + w * (1 << _PRECISION_BITS))
        idx[xx, :xmax] = taps + xmin
        idx[xx, xmax:] = xmin
        weights[xx, :xmax] = np.trunc(fixed)  # C's (int) cast
    return idx, weights


def _dense(idx: np.ndarray, weights: np.ndarray, in_size: int) -> np.ndarray:
    """The pass as an out x in matrix of integer weights (unused taps add 0)."""
    dense = np.zeros((idx.shape[0], in_size), np.float64)
    np.add.at(dense, (np.arange(idx.shape[0])[:, None], idx), weights)
    return dense


def _pass(img, dim: int, idx: np.ndarray, weights: np.ndarray):
    """One resampling pass along ``dim`` (-1 horizontal, -2 vertical) of float64 ... x H x W images of integers.

    A float64 matmul is exact here: bytes times 22-bit weights summed over a
    row stay far below 2^53, so the order of the sums cannot change a bit.
    """
    import torch

    matrix = torch.from_numpy(_dense(idx, weights, img.shape[dim])).to(img.device)
    acc = img @ matrix.T if dim == -1 else matrix @ img
    # clip8: (sum + 2^21) >> 22, clamped to a byte
    return torch.floor((acc + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS)).clamp_(0, 255)


def _box_average(img, factor_x: int, factor_y: int):
    """Block means rounded to bytes (a reduced decode, or Pillow's ``reduce``); edge blocks average what is there."""
    import torch

    if factor_x == 1 and factor_y == 1:
        return img
    pooled = torch.nn.functional.avg_pool2d(img, (factor_y, factor_x), ceil_mode=True)
    return torch.floor(pooled + 0.5)


def reduced(decoded, scale: int):
    """What the CPU path's reduced-DCT decode at ``1/scale`` gives, from a full-size uint8 C x H x W decode.

    float64 holding integers. A scaled 1x1 IDCT is its block's mean; sums of
    up to 64 bytes are exact in float32, the passes need float64's 53 bits.
    """
    return _box_average(decoded.float().unsqueeze(0), scale, scale)[0].double()


def model_square(decoded, target: int, squash: bool, scale: int):
    """One photo's CPU-path input square (before EXIF orientation) from its full-size uint8 C x H x W decode."""
    full_h, full_w = decoded.shape[-2:]
    return resize_square(reduced(decoded, scale).unsqueeze(0), full_w, full_h, scale, target, squash)[0]


def resize_square(img, full_w: int, full_h: int, scale: int, target: int, squash: bool):
    """``imageio._model_input`` after its decode, on N photos of one geometry.

    Args:
        img: float64 N x C x h x w, the reduced decodes (:func:`reduced`).
        full_w, full_h: the stored photo's size before the reduced decode.
        scale: the reduced-DCT scale (:func:`draft_scale`; 1 for non-JPEGs).
        target: the model's input side.
        squash: resize the whole frame (SigLIP) instead of the centre square.

    Returns:
        float64 N x C x target x target holding integers 0..255.
    """
    vw, vh = full_w / scale, full_h / scale  # the area the reduced decode covers
    if squash:
        box = [0.0, 0.0, vw, vh]
    else:
        side = min(vw, vh)
        left, top = (vw - side) / 2, (vh - side) / 2
        box = [left, top, left + side, top + side]
    factor_x = int((box[2] - box[0]) / target / _REDUCING_GAP) or 1
    factor_y = int((box[3] - box[1]) / target / _REDUCING_GAP) or 1
    if factor_x > 1 or factor_y > 1:  # Image.resize's reducing_gap: reduce() the safe box first
        support_x = (_BICUBIC_SUPPORT - 0.5) * (box[2] - box[0]) / target
        support_y = (_BICUBIC_SUPPORT - 0.5) * (box[3] - box[1]) / target
        h, w = img.shape[-2:]
        x0, y0 = max(0, int(box[0] - support_x)), max(0, int(box[1] - support_y))
        x1, y1 = min(w, math.ceil(box[2] + support_x)), min(h, math.ceil(box[3] + support_y))
        img = _box_average(img[..., y0:y1, x0:x1], factor_x, factor_y)
        box = [(box[0] - x0) / factor_x, (box[1] - y0) / factor_y, (box[2] - x0) / factor_x, (box[3] - y0) / factor_y]
    h, w = img.shape[-2:]
    if (w, h) == (target, target) and box == [0, 0, w, h]:
        return img
    rows, row_weights = coefficients(h, box[1], box[3], target)
    cols = coefficients(w, box[0], box[2], target)
    if vertical_first(w, h, tuple(box), target):
        return _pass(_pass(img, -2, rows, row_weights), -1, *cols)
    # Pillow runs the horizontal pass only over the rows the vertical one reads.
    first, last = int(rows.min()), int(rows.max()) + 1
    return _pass(_pass(img[..., first:last, :], -1, *cols), -2, rows - first, row_weights)


@lru_cache(maxsize=1024)
def vertical_first(width: int, height: int, box: tuple[float, float, float, float], target: int) -> bool:
    """Whether this Pillow resizes this geometry vertical pass first (it rounds to bytes between the passes).

    Pillow 13 picks the order from the geometry by a rule of its own (older
    releases always went horizontal first), so ask it: resize noise of this
    size both ways here and keep the order that gives Pillow's bytes. A few
    milliseconds once per geometry; a camera's photos share one.
    """
    import torch
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(noise, "L").resize((target, target), Image.Resampling.BICUBIC, box=box))
    img = torch.from_numpy(noise.astype(np.float64)).unsqueeze(0)
    rows, cols = coefficients(height, box[1], box[3], target), coefficients(width, box[0], box[2], target)
    ours = _pass(_pass(img, -2, *rows), -1, *cols)[0].numpy()
    return bool((ours == ref).all())


def upright(square, orientation: int):
    """``imageio._upright`` on a C x S x S tensor: the EXIF orientation applied after the resize."""
    import torch

    if orientation in (2, 4, 5, 7):  # the flipped ones: flip first, then rotate as 1, 3, 8, 6
        square = torch.flip(square, dims=[-1])
        orientation = {2: 1, 4: 3, 5: 8, 7: 6}[orientation]
    turns = {3: 2, 6: 3, 8: 1}.get(orientation, 0)  # counter-clockwise quarter turns
    return torch.rot90(square, turns, dims=(-2, -1)) if turns else square
