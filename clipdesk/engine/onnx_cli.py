"""``clipdesk models export-onnx``: graphs for the torch-free (packaged) app."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_models_actions(models: argparse.ArgumentParser) -> None:
    models.add_argument("action", nargs="?", choices=("list", "export-onnx"), default="list",
                        help="list (default) or export-onnx: write ONNX graphs for --model (default: every preset)")
    models.add_argument("--out", metavar="DIR", help="export-onnx: where to write (default: MODELS_DIR/onnx)")


def cmd_export_onnx(args) -> int:
    from clipdesk.engine.onnx_export import export_arch, export_presets, export_spec_weights
    from clipdesk.engine.registry import resolve
    from clipdesk.paths import models_dir

    out = Path(args.out).expanduser() if getattr(args, "out", None) else models_dir() / "onnx"
    if args.model:
        spec = resolve(args.model)
        written = [export_arch(spec.arch, out, with_random_weights=spec.random_init)]
        converted = export_spec_weights(spec, out)
        if converted:
            written.append(converted)
    else:
        written = export_presets(out)
    for path in written:
        print(path)
    return 0
