#!/usr/bin/env bash
# Set up (first time) and run the whole test suite, headless.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
"$ROOT/.venv/bin/lint-imports"
"$ROOT/.venv/bin/ruff" check --quiet clipdesk tests
# pytest exits 5 when it collected nothing: that is a failure too.
exec "$ROOT/.venv/bin/python" -m pytest "$@"
