#!/usr/bin/env bash
# Set up (first time) and run the whole test suite, headless; then tests/core once more without Qt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
"$ROOT/.venv/bin/lint-imports"
"$ROOT/.venv/bin/ruff" check --quiet clipdesk tests
# pytest exits 5 when it collected nothing: that is a failure too.
# The whole suite (no test paths or -k given) runs tests/core without Qt, as napari's headless job does:
# tests/core/qtless/sitecustomize.py makes PySide6 unimportable in every Python process of that run
# (pytest, subprocesses, decode workers), and pytest-qt, which needs Qt, stays off. The core tests run
# once, there; the GUI and end-to-end tests run with Qt. CLIPDESK_QTLESS=0 runs everything with Qt.
# The whole suite runs on one worker per core (pytest-xdist, at most 4: each worker's torch uses every
# core too); loadfile keeps a file's tests, and so its module fixtures, on one worker.
# CLIPDESK_TEST_WORKERS=1 runs it in one process.
whole=1
for arg in "$@"; do [[ $arg == -* ]] || whole=0; done
if [[ $whole == 1 ]]; then
    cores="$(nproc 2>/dev/null || echo 2)"
    workers="${CLIPDESK_TEST_WORKERS:-$((cores < 4 ? cores : 4))}"
    if [[ $workers -gt 1 ]]; then set -- -n "$workers" --dist loadfile "$@"; fi
fi
if [[ $whole == 1 && ${CLIPDESK_QTLESS:-1} != 0 ]]; then
    "$ROOT/.venv/bin/python" -m pytest "$@" tests/gui tests/e2e
    echo "clipdesk: tests/core, with PySide6 blocked" >&2
    CLIPDESK_BLOCK_QT=1 PYTHONPATH="$ROOT/tests/core/qtless${PYTHONPATH:+:$PYTHONPATH}" \
        exec "$ROOT/.venv/bin/python" -m pytest -p no:pytest-qt "$@" tests/core
fi
exec "$ROOT/.venv/bin/python" -m pytest "$@"
