"""Desktop integration files validate; install.sh / uninstall.sh keep user data (no build needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DESKTOP = REPO / "resources" / "desktop" / "io.github.clipdesk.clipdesk.desktop"
METAINFO = REPO / "resources" / "desktop" / "io.github.clipdesk.clipdesk.metainfo.xml"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: desktop-file-utils / appstream)")
    return path


def test_desktop_file_validates_and_opens_folders_and_images():
    done = subprocess.run([_tool("desktop-file-validate"), str(DESKTOP)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout
    text = DESKTOP.read_text()
    assert "Exec=clipdesk-gui %F" in text
    assert all(m in text for m in ("inode/directory;", "image/jpeg;", "image/heic;"))


def test_metainfo_validates():
    done = subprocess.run([_tool("appstreamcli"), "validate", "--no-net", "--pedantic", str(METAINFO)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_icons_cover_the_hicolor_sizes():
    for size in (16, 32, 48, 128, 256, 512):
        assert (REPO / f"resources/icons/hicolor/{size}x{size}/apps/io.github.clipdesk.clipdesk.png").is_file()


def test_install_then_uninstall_keeps_photos_and_library(tmp_path):
    bundle = tmp_path / "clipdesk-0.0-linux"
    (bundle / "app").mkdir(parents=True)
    for cmd in ("clipdesk", "clipdesk-gui"):
        (bundle / "app" / cmd).write_text("#!/bin/sh\necho ran\n")
        (bundle / "app" / cmd).chmod(0o755)
    shutil.copytree(REPO / "resources" / "icons" / "hicolor", bundle / "share" / "icons" / "hicolor")
    (bundle / "share" / "applications").mkdir(parents=True)
    (bundle / "share" / "metainfo").mkdir(parents=True)
    shutil.copy(DESKTOP, bundle / "share" / "applications")
    shutil.copy(METAINFO, bundle / "share" / "metainfo")
    for script in ("install.sh", "uninstall.sh"):
        shutil.copy(REPO / "packaging" / "linux" / script, bundle)
    (bundle / "VERSION").write_text("0.0\n")
    home, prefix = tmp_path / "home", tmp_path / "home" / ".local"
    data = home / ".local" / "share" / "clipdesk" / "library"
    data.mkdir(parents=True)
    (data / "clipdesk.db").write_bytes(b"db")
    photo = home / ".local" / "share" / "photo.jpg"  # a photo living under the same prefix
    photo.write_bytes(b"jpeg")
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "PREFIX": str(prefix)}
    for _ in range(2):  # a reinstall replaces the app only
        subprocess.run(["sh", str(bundle / "install.sh")], env=env, check=True, capture_output=True)
    app = prefix / "lib" / "clipdesk"
    assert subprocess.run([str(prefix / "bin" / "clipdesk-gui")], capture_output=True, text=True).stdout == "ran\n"
    desktop = (prefix / "share/applications/io.github.clipdesk.clipdesk.desktop").read_text()
    assert f"Exec={app}/clipdesk-gui %F" in desktop
    assert (prefix / "share/icons/hicolor/256x256/apps/io.github.clipdesk.clipdesk.png").is_file()
    subprocess.run(["sh", str(app / "uninstall.sh")], env=env, check=True, capture_output=True)
    assert not app.exists() and not (prefix / "bin" / "clipdesk-gui").exists()
    assert not (prefix / "share/applications/io.github.clipdesk.clipdesk.desktop").exists()
    assert (data / "clipdesk.db").read_bytes() == b"db" and photo.read_bytes() == b"jpeg"
