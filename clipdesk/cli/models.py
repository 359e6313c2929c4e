"""``clipdesk models``: list the presets, ``download`` a model's weights now, ``export-onnx`` graphs for the torch-free app,
``bench-engines``: which engine is faster on this CPU."""

from __future__ import annotations

from pathlib import Path

from clipdesk.cli.support import ProgressBar, emit, say, sigint_cancels


def add_parsers(sub, common) -> None:
    models = sub.add_parser("models", parents=[common], help="list model presets and whether their weights are present")
    models.add_argument("action", nargs="?", choices=("list", "download", "export-onnx", "bench-engines"),
                        default="list", help="list (default); download NAME: fetch and verify a model's weights now; "
                        "export-onnx: write ONNX graphs for --model (default: every preset); bench-engines: time "
                        "torch against ONNX Runtime for --model on this CPU and use the faster one from now on")
    models.add_argument("name", nargs="?", metavar="NAME", help="download: the model (default: --model or the default)")
    models.add_argument("--out", metavar="DIR", help="export-onnx: where to write (default: MODELS_DIR/onnx)")
    models.set_defaults(func=cmd_models)


def cmd_models(args) -> int:
    if args.action == "export-onnx":
        return cmd_export_onnx(args)
    if args.action == "download":
        return cmd_download(args)
    if args.action == "bench-engines":
        return cmd_bench_engines(args)
    return cmd_list(args)


def cmd_list(args) -> int:
    from clipdesk.engine.registry import DEFAULT_PRESET, PRESETS, resolve
    from clipdesk.engine.sources import loadable_here, weight_source, weights_present
    from clipdesk.paths import models_dir

    rows, skipped = [], []
    for name in PRESETS:
        spec = resolve(name)  # a preset's checkpoint file, under the models folder
        why_not = loadable_here(spec)
        if why_not:  # the packaged app lists only what it can run
            skipped.append(f"{name} ({why_not})")
            continue
        source = weight_source(spec)
        rows.append({"name": spec.name, "arch": spec.arch, "pretrained": spec.pretrained, "base_tag": spec.base_tag,
                     "checkpoint": spec.checkpoint, "url": spec.url,
                     "file": (source.path.name if source.path else (source.filenames or [None])[0]),
                     "hub_repo": source.repo, "default": spec.name == DEFAULT_PRESET,
                     "test_only": spec.random_init, "weights_present": weights_present(spec),
                     "description": spec.description})
    human = [f"{'*' if r['default'] else ' '} {r['name']:17s} {'ready     ' if r['weights_present'] else 'not local '}"
             f"{r['description']}" for r in rows]
    human.append(f"Model files are cached in {models_dir()} (CLIPDESK_MODELS overrides); "
                 "a model that is not local downloads on first use, or now with: clipdesk models download NAME.")
    if skipped:
        human.append("Not available in this build: " + "; ".join(skipped) + ".")
    emit(args, {"models": rows, "models_dir": str(models_dir()), "unavailable": skipped}, human)
    return 0


def cmd_download(args) -> int:
    """Fetch a model's weights with a progress bar; Ctrl-C stops, and the next run resumes."""
    from clipdesk.engine import weights
    from clipdesk.engine.registry import resolve
    from clipdesk.engine.sources import weights_present
    from clipdesk.jobs import CancelToken

    spec = resolve(args.name or args.model)
    if weights_present(spec):
        print(f"{spec.name}: weights already present.")
        return 0
    with sigint_cancels(CancelToken()) as token, \
            ProgressBar(not args.json, desc=spec.name, unit="B", unit_scale=True) as bar:
        path = weights.download_weights(spec, bar.count, token, on_note=say)
    print(f"{spec.name}: {path}")
    return 0


def cmd_export_onnx(args) -> int:
    from clipdesk.engine.onnx_export import export_presets, export_spec, export_spec_weights
    from clipdesk.engine.registry import resolve
    from clipdesk.paths import models_dir

    out = Path(args.out).expanduser() if args.out else models_dir() / "onnx"
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


def cmd_bench_engines(args) -> int:
    """Time both engines at fp32 on the CPU (random weights of the model's architecture), record the faster.

    They compute the same vectors (one key), so the switch needs no re-indexing. When ONNX Runtime wins,
    the model's graph is exported too, so that it can be used.
    """
    from clipdesk.engine import engine_choice
    from clipdesk.engine.base import torch_available
    from clipdesk.engine.onnx_export import export_spec
    from clipdesk.engine.onnx_files import find_graph_dir
    from clipdesk.engine.registry import resolve
    from clipdesk.errors import TrainingUnavailable
    from clipdesk.paths import models_dir

    if not torch_available():  # the packaged app: one engine, nothing to choose
        raise TrainingUnavailable("bench-engines compares PyTorch with ONNX Runtime; this install has only ONNX "
                                  "Runtime, which is what it uses.")
    spec = resolve(args.model)
    with ProgressBar(not args.json, desc=f"{spec.arch} on each engine", unit="round") as bar:
        rates = engine_choice.measure(spec.arch, on_round=bar.count)
    engine = engine_choice.record(spec.arch, rates)
    if engine == "onnx" and find_graph_dir(spec) is None:
        export_spec(spec, models_dir() / "onnx")
    ratio = rates["onnx"] / rates["torch"]
    emit(args, {"cpu": engine_choice.cpu_model(), "arch": spec.arch, "images_per_s": rates, "engine": engine},
         [f"{spec.arch} on {engine_choice.cpu_model()}: torch {rates['torch']:.1f} images/s, ONNX Runtime "
          f"{rates['onnx']:.1f} images/s ({ratio:.2f}x); fp32 on the CPU uses {engine} from now on "
          "(CLIPDESK_ENGINE=torch|onnx overrides; the vectors are the same either way)."])
    return 0
