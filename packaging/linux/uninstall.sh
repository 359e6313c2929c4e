#!/bin/sh
# Removes the installed app: PREFIX/lib/clipdesk and the files install.sh listed in it.
# Never touches photos, and keeps the library (index, labels), thumbnails and downloaded models:
# reinstalling finds them again. Their folders are printed so you can delete them yourself.
set -eu
APP="$(cd "$(dirname "$0")" && pwd)"
PREFIX="${PREFIX:-$(dirname "$(dirname "$APP")")}"
[ -f "$APP/installed-files" ] || { echo "uninstall.sh: $APP is not an installed clipdesk" >&2; exit 1; }
while IFS= read -r path; do
    case "$path" in "$PREFIX"/*) rm -f "$path" ;; esac  # only what install.sh put under PREFIX
done <"$APP/installed-files"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$PREFIX/share/applications" || true
case "$(basename "$APP")" in clipdesk) rm -rf "$APP" ;; *) echo "refusing to delete $APP" >&2; exit 1 ;; esac
echo "clipdesk removed. Kept (delete them yourself if you want):"
echo "  library and settings: ${XDG_DATA_HOME:-$HOME/.local/share}/clipdesk, ${XDG_CONFIG_HOME:-$HOME/.config}/clipdesk"
echo "  thumbnails and models: ${XDG_CACHE_HOME:-$HOME/.cache}/clipdesk"
