"""PyInstaller runtime hook: where the frozen app finds its ONNX graphs, and portable mode.

Runs before clipdesk is imported. A file named ``portable`` beside the
executable keeps the library, settings and model cache in ``data/`` beside
it (a USB stick); otherwise the usual per-user platformdirs locations hold
them, so a reinstall keeps them.
"""

import os
import sys
from pathlib import Path

_bundle = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
_graphs = str(_bundle / "onnx")
os.environ["CLIPDESK_ONNX_PATH"] = os.pathsep.join(p for p in (os.environ.get("CLIPDESK_ONNX_PATH"), _graphs) if p)
os.environ.setdefault("CLIPDESK_ENGINE", "onnx")  # no torch in the bundle
_exe_dir = Path(sys.executable).resolve().parent
if (_exe_dir / "portable").exists():
    os.environ.setdefault("CLIPDESK_HOME", str(_exe_dir / "data"))
