#!/bin/sh
# Installs clipdesk for this user (no root): run it from the unpacked bundle.
#   ./install.sh            -> ~/.local (PREFIX=/opt/x ./install.sh for elsewhere)
# Puts the app in PREFIX/lib/clipdesk, the commands clipdesk and clipdesk-gui in PREFIX/bin, and the
# menu entry, icons and AppStream metainfo in PREFIX/share. Reinstalling replaces only those: the
# library, thumbnails and downloaded models live in the per-user data/cache folders and are kept.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX="${PREFIX:-$HOME/.local}"
APP="$PREFIX/lib/clipdesk"
ID=io.github.clipdesk.clipdesk

[ -x "$HERE/app/clipdesk-gui" ] || { echo "install.sh: run me from the unpacked clipdesk folder" >&2; exit 1; }
mkdir -p "$PREFIX/lib" "$PREFIX/bin" "$PREFIX/share/applications" "$PREFIX/share/metainfo"
# Copy first, swap after: an interrupted install leaves the previous version working.
rm -rf "$APP.new"
cp -a "$HERE/app" "$APP.new"
cp "$HERE/uninstall.sh" "$HERE/VERSION" "$APP.new/"
rm -rf "$APP.old"
[ -e "$APP" ] && mv "$APP" "$APP.old"
mv "$APP.new" "$APP"
rm -rf "$APP.old"

manifest="$APP/installed-files"
: >"$manifest"
put() {  # put SOURCE TARGET: install one file and remember it for uninstall.sh
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2"
    echo "$2" >>"$manifest"
}
for cmd in clipdesk clipdesk-gui; do
    ln -sfn "$APP/$cmd" "$PREFIX/bin/$cmd"
    echo "$PREFIX/bin/$cmd" >>"$manifest"
done
# Absolute Exec: the desktop session may not have PREFIX/bin on its PATH.
sed -e "s|^Exec=clipdesk-gui|Exec=$APP/clipdesk-gui|" -e "s|^TryExec=clipdesk-gui|TryExec=$APP/clipdesk-gui|" \
    "$HERE/share/applications/$ID.desktop" >"$APP/$ID.desktop"
put "$APP/$ID.desktop" "$PREFIX/share/applications/$ID.desktop"
put "$HERE/share/metainfo/$ID.metainfo.xml" "$PREFIX/share/metainfo/$ID.metainfo.xml"
for icon in "$HERE"/share/icons/hicolor/*/apps/*; do
    put "$icon" "$PREFIX/share/icons/hicolor/${icon#"$HERE"/share/icons/hicolor/}"
done

command -v update-desktop-database >/dev/null && update-desktop-database -q "$PREFIX/share/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$PREFIX/share/icons/hicolor" 2>/dev/null || true

echo "clipdesk $(cat "$HERE/VERSION") installed in $APP"
case ":$PATH:" in *":$PREFIX/bin:"*) ;; *) echo "Note: $PREFIX/bin is not on your PATH; the menu entry works regardless." ;; esac
echo "Start it from the applications menu, or: clipdesk-gui   (check it: clipdesk-gui --self-test)"
echo "Uninstall: $APP/uninstall.sh (keeps your photos and your library)"
