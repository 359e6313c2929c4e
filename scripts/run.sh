#!/usr/bin/env bash
# Set up (first time) and launch clipdesk. Arguments go to the clipdesk CLI,
# e.g. scripts/run.sh index ~/Pictures ; scripts/run.sh search "dog on a beach".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
exec "$ROOT/.venv/bin/clipdesk" "$@"
