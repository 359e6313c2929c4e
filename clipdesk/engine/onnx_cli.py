"""``clipdesk models download`` (weights now, with progress) and ``models export-onnx`` (graphs for the torch-free app)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_models_actions(models: argparse.ArgumentParser) -> None:
    models.add_argument("action", nargs="?", choices=("list", "download", "export-onnx"), default="list",
                        help="list (default); download NAME: fetch and verify a model's weights now; "
                        "export-onnx: write ONNX graphs for --model (default: every preset)")
    models.add_argument("name", nargs="?", metavar="NAME", help="download: the model (default: --model or the default)")
    models.add_argument("--out", metavar="DIR", help="export-onnx: where to write (default: MODELS_DIR/onnx)")


def cmd_export_onnx(args) -> int:
    from clipdesk.engine.onnx_export import export_presets, export_spec, export_spec_weights
    from clipdesk.engine.registry import resolve
    from clipdesk.paths import models_dir

    out = Path(args.out).expanduser() if getattr(args, "out", None) else models_dir() / "onnx"
    if args.model:
        spec = resolve(args.model)
        written = [export_spec(spec, out)]
        converted = export_spec_weights(spec, written[0])
        if converted:
            written.append(converted)
    else:
        written = export_presets(out)
    for path in written:
        print(path)
    return 0


def cmd_download(args, sigint_cancels) -> int:
    """Fetch a model's weights with a progress bar; Ctrl-C stops, and the next run resumes."""
    import sys

    from clipdesk.engine.registry import resolve
    from clipdesk.engine.sources import weights_present
    from clipdesk.engine.weights import download_weights
    from clipdesk.jobs import CancelToken

    spec = resolve(getattr(args, "name", None) or args.model)
    if weights_present(spec):
        print(f"{spec.name}: weights already present.")
        return 0
    token = CancelToken()
    shown = {"bar": None}

    def progress(done: int, total: int) -> None:
        if args.json or not sys.stderr.isatty():
            return
        from tqdm import tqdm

        if shown["bar"] is None:
            shown["bar"] = tqdm(total=total or None, unit="B", unit_scale=True, desc=spec.name, file=sys.stderr)
        shown["bar"].total = total or shown["bar"].total
        shown["bar"].update(done - shown["bar"].n)

    with sigint_cancels(token):
        try:
            path = download_weights(spec, progress, token, on_note=lambda note: print(f"clipdesk: {note}",
                                                                                     file=sys.stderr))
        finally:
            if shown["bar"] is not None:
                shown["bar"].close()
    print(f"{spec.name}: {path}")
    return 0
