#!/usr/bin/env bash
# The GPU check a lent NVIDIA machine runs in one call (a few minutes): index 500 shared photos with a
# full-size random-init ViT-B-32 on CUDA at fp16, search, caption with the tiny CoCa; exit non-zero on any
# error. Arguments go to bench/gpu_check.py (e.g. --photos 200, --precision bf16, --device cpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${CLIPDESK_PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY="python3"; fi
fi
export HF_HUB_OFFLINE=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/bench/gpu_check.py" "$@"
