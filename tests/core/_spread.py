"""The tiny test model's seed-0 weights scaled x3: real photos (and captions) get clearly different vectors.

The plain random tiny model maps every photo to nearly one direction (cosines 0.95-0.995), where any two engines or
precisions "agree"; these weights leave room to disagree.
"""

from __future__ import annotations

from pathlib import Path


def write_spread_checkpoint(folder: Path) -> Path:
    import open_clip
    import torch
    from safetensors.torch import save_file

    from clipdesk.engine.registry import TINY_ARCH, register_tiny

    register_tiny()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(TINY_ARCH, pretrained=None)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("visual.", "transformer.")) or name == "text_projection":
                p.mul_(3.0)
    path = folder / "spread.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path
