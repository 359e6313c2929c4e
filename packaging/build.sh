#!/usr/bin/env bash
# Builds the Linux bundle from a clean checkout, in one command:
#   packaging/build.sh   ->   dist/clipdesk-VERSION-linux-x86_64.tar.gz  (its size is printed)
# Steps: the development venv (scripts/bootstrap.sh, has torch) exports the ONNX graphs; a separate
# build venv without torch (build/packaging/venv) freezes the app with PyInstaller; the folder is
# staged with the desktop files and install/uninstall scripts and tarred.
# CLIPDESK_SKIP_EXPORT=1 reuses build/packaging/onnx; CLIPDESK_PRESETS="vit-b-32 tiny-random" limits the graphs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="$ROOT/build/packaging"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
NAME="clipdesk-$VERSION-linux-$(uname -m)"
mkdir -p "$BUILD" dist
say() { echo "build.sh: $*" >&2; }

# 1. ONNX graphs (needs torch + open_clip: the development venv)
if [ "${CLIPDESK_SKIP_EXPORT:-0}" != 1 ] || [ ! -d "$BUILD/onnx" ]; then
    bash scripts/bootstrap.sh
    rm -rf "$BUILD/onnx.tmp"
    # Not vit-l-14: its hub repository holds only a .bin, which the torch-free bundle cannot read.
    for preset in ${CLIPDESK_PRESETS:-vit-b-32 vit-b-32-256 vit-b-16 tiny-random}; do
        say "exporting ONNX graphs for $preset"
        CLIPDESK_HOME="$BUILD/export-home" .venv/bin/clipdesk models export-onnx --model "$preset" --out "$BUILD/onnx.tmp" >/dev/null
    done
    rm -rf "$BUILD/onnx" && mv "$BUILD/onnx.tmp" "$BUILD/onnx"
fi

# 2. the build venv: runtime dependencies without torch, and PyInstaller
PY="${CLIPDESK_PYTHON:-python3.11}"
STAMP="$BUILD/venv/.installed"
WANT="$(cat packaging/requirements-bundle.txt requirements/constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    say "creating the build venv (no torch)"
    rm -rf "$BUILD/venv" && "$PY" -m venv "$BUILD/venv"
    "$BUILD/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c requirements/constraints.txt -r packaging/requirements-bundle.txt
    echo "$WANT" >"$STAMP"
fi
if "$BUILD/venv/bin/python" -c 'import torch' 2>/dev/null; then
    say "torch is in the build venv: the bundle would carry it; refusing" && exit 1
fi

# 3. freeze
say "freezing with PyInstaller (minutes)"
CLIPDESK_ONNX_BUILD="$BUILD/onnx" CLIPDESK_VERSION="$VERSION" "$BUILD/venv/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath "$BUILD/dist" --workpath "$BUILD/work" packaging/clipdesk.spec

# 4. stage: app/ + desktop integration + install scripts
STAGE="$BUILD/stage/$NAME"
rm -rf "$BUILD/stage" && mkdir -p "$STAGE/share/applications" "$STAGE/share/metainfo"
cp -a "$BUILD/dist/clipdesk" "$STAGE/app"
cp resources/desktop/io.github.clipdesk.clipdesk.desktop "$STAGE/share/applications/"
cp resources/desktop/io.github.clipdesk.clipdesk.metainfo.xml "$STAGE/share/metainfo/"
mkdir -p "$STAGE/share/icons" && cp -a resources/icons/hicolor "$STAGE/share/icons/"  # packaging/render_icons.py makes them
cp packaging/linux/install.sh packaging/linux/uninstall.sh "$STAGE/"
cp LICENSE "$STAGE/" 2>/dev/null || true
echo "$VERSION" >"$STAGE/VERSION"

# 5. tar
say "compressing"
tar -C "$BUILD/stage" -czf "dist/$NAME.tar.gz" "$NAME"
echo "bundle folder: $(du -sh "$STAGE" | cut -f1)  ($STAGE)"
echo "tarball:       $(du -h "dist/$NAME.tar.gz" | cut -f1)  (dist/$NAME.tar.gz)"
