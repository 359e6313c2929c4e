#!/usr/bin/env bash
# Smoke test of the frozen bundle: build it (or reuse dist/ with CLIPDESK_REUSE=1), unpack it into a
# temporary folder, install it into a temporary PREFIX, run `clipdesk-gui --self-test` from there
# (real window offscreen, sample photos, tiny model, text + similar search) and report the size and
# launch-to-window time. Several minutes: run before a release or after packaging changes, not in CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
NAME="clipdesk-$VERSION-linux-$(uname -m)"
TARBALL="dist/$NAME.tar.gz"
if [ "${CLIPDESK_REUSE:-0}" != 1 ] || [ ! -f "$TARBALL" ]; then
    packaging/build.sh
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
tar -C "$WORK" -xzf "$TARBALL"
if find "$WORK/$NAME/app" -maxdepth 2 -name 'torch' -o -maxdepth 2 -name 'libtorch*' | grep -q .; then
    echo "smoke.sh: torch is in the bundle; the spec's excludes failed" >&2
    exit 1
fi
# A bare environment: a fresh HOME, no venv, no Python path, so nothing leaks in from the build machine.
RUN=(env -i HOME="$WORK/home" PATH=/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen)
mkdir -p "$WORK/home"
"${RUN[@]}" PREFIX="$WORK/prefix" sh "$WORK/$NAME/install.sh" >/dev/null
"${RUN[@]}" "$WORK/prefix/bin/clipdesk" --version
start=$(date +%s.%N)
"${RUN[@]}" "$WORK/prefix/bin/clipdesk-gui" --self-test | tee "$WORK/selftest.txt"
end=$(date +%s.%N)
window=$(sed -n 's/.*window shown \([0-9.]*\) s.*/\1/p' "$WORK/selftest.txt")
"${RUN[@]}" sh "$WORK/prefix/lib/clipdesk/uninstall.sh" >/dev/null
[ ! -e "$WORK/prefix/bin/clipdesk-gui" ] || { echo "smoke.sh: uninstall left files" >&2; exit 1; }
echo "smoke.sh: PASSED"
echo "  tarball $(du -h "$TARBALL" | cut -f1), installed $(du -sh "$WORK/$NAME" | cut -f1)"
echo "  launch to window: ${window} s; whole self-test (cold, incl. indexing + searches): $(echo "$end - $start" | bc) s"
