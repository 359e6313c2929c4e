"""Train the text-only caption decoder once and print time and held-out reconstruction.

    .venv/bin/python bench/caption_train.py --model tiny-random
    .venv/bin/python bench/caption_train.py --model vit-b-32-random   # ViT-B-32, random weights

``vit-b-32-random`` is the default preset's architecture without its weights
(none can be downloaded here): it gives the real encoding and training cost, but
its text vectors carry only what a random transformer keeps. Figures go to
docs/perf.md ("Caption decoder training"). Caption vectors are cached in the
library, so a second run with the same captions skips the encoding.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import REPO  # noqa: F401 - puts the repo on sys.path

from clipdesk.captions.train import DEFAULT_EPOCHS, DEFAULT_MAX_CAPTIONS, train
from clipdesk.engine.clip import ClipEngine
from clipdesk.engine.registry import ModelSpec, resolve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-random", help="a preset, or vit-b-32-random")
    ap.add_argument("--library", type=Path, default=None, help="library dir (default: a temporary one)")
    ap.add_argument("--max-captions", type=int, default=DEFAULT_MAX_CAPTIONS)
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: best on a shared machine)")
    args = ap.parse_args()
    spec = (ModelSpec("vit-b-32-random", "ViT-B-32", random_init=True) if args.model == "vit-b-32-random"
            else resolve(args.model))
    engine = ClipEngine(spec, device="cpu", batch_size=64)
    library = args.library or Path(tempfile.mkdtemp(prefix="clipdesk-captrain-"))
    last = [0.0]

    def progress(p):
        if time.monotonic() - last[0] > 30 or p.done == p.total:
            last[0] = time.monotonic()
            print(f"  {p.phase}: {p.done}/{p.total}", flush=True)

    result = train(engine, library, max_captions=args.max_captions, epochs=args.epochs, threads=args.threads,
                   progress=progress)
    held = result.held_out
    print(json.dumps({
        "model": spec.key, "captions": result.captions, "vocab": result.vocab_size, "epochs": result.epochs,
        "steps": result.steps, "train_loss": result.train_loss, "seconds_encoding": round(result.seconds_encoding, 1),
        "seconds_training": round(result.seconds_training, 1), "seconds": round(result.seconds, 1),
        "held_out": {k: held[k] for k in ("captions", "text", "text_projected", "baseline", "baseline_caption")},
        "examples": held["examples"][:3], "checkpoint": str(result.path),
    }, indent=1))


if __name__ == "__main__":
    main()
