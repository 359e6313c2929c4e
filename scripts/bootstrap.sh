#!/usr/bin/env bash
# Creates or refreshes .venv with the pinned, tested dependency set.
# Sourced by run.sh and test.sh; safe to run repeatedly (a stamp skips pip
# when pyproject.toml and the constraints have not changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CLIPDESK_VENV:-$ROOT/.venv}"

pick_python() {
    # 3.11 first: the pinned torch wheel is prebuilt for it on our machines.
    for cand in "${CLIPDESK_PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$cand"
            return 0
        fi
    done
    echo "clipdesk: Python 3.11 or newer is required (set CLIPDESK_PYTHON to its path)." >&2
    return 1
}

if [ ! -x "$VENV/bin/python" ]; then
    PY="$(pick_python)"
    echo "clipdesk: creating $VENV with $("$PY" --version)" >&2
    "$PY" -m venv "$VENV"
fi

STAMP="$VENV/.clipdesk-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/requirements/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "clipdesk: installing dependencies (first run downloads PyTorch; this takes a few minutes)..." >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$ROOT/requirements/constraints.txt" -e "$ROOT[gui,heif,dev]"
    echo "$WANT" >"$STAMP"
fi
