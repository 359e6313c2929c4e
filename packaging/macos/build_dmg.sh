#!/usr/bin/env bash
# macOS: clipdesk.app in a .dmg. UNTESTED here (built and tested on Linux only).
# The same spec as Linux: packaging/clipdesk.spec makes build/packaging/dist/clipdesk.app with BUNDLE
# (Info.plist declares folders and images for "Open With"). Run on a Mac with Python 3.11:
#   packaging/macos/build_dmg.sh   ->   dist/clipdesk-VERSION-macos-ARCH.dmg
# Needs packaging/macos/clipdesk.icns (made below from the SVG with iconutil). Signing and notarising are
# not done: Gatekeeper will ask the user to confirm the first launch (right-click > Open).
# Data: the library is in ~/Library/Application Support/clipdesk, thumbnails and models in
# ~/Library/Caches/clipdesk (platformdirs); dragging the app to the Trash keeps them and never touches photos.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
BUILD="$ROOT/build/packaging"

# icon: the hicolor PNGs rendered from resources/icons/clipdesk.svg
ICONSET="$BUILD/clipdesk.iconset"
mkdir -p "$ICONSET"
for size in 16 32 128 256 512; do
    cp "resources/icons/hicolor/${size}x${size}/apps/io.github.clipdesk.clipdesk.png" "$ICONSET/icon_${size}x${size}.png"
done
iconutil -c icns "$ICONSET" -o packaging/macos/clipdesk.icns

# the app: same steps as build.sh up to PyInstaller (it builds the .app on macOS)
CLIPDESK_PYTHON="${CLIPDESK_PYTHON:-python3.11}" packaging/build.sh || true  # the Linux staging step fails here; the .app is built before it
APP="$BUILD/dist/clipdesk.app"
[ -d "$APP" ] || { echo "no $APP" >&2; exit 1; }

# the disk image: the app and a link to /Applications to drag it onto
DMG_DIR="$BUILD/dmg"
rm -rf "$DMG_DIR" && mkdir -p "$DMG_DIR"
cp -R "$APP" "$DMG_DIR/"
ln -s /Applications "$DMG_DIR/Applications"
mkdir -p dist
hdiutil create -volname "clipdesk $VERSION" -srcfolder "$DMG_DIR" -ov -format UDZO \
    "dist/clipdesk-$VERSION-macos-$(uname -m).dmg"
