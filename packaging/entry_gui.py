"""Frozen ``clipdesk-gui`` (desktop files: open folders and photos; --self-test)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the decode pool spawns worker processes of this executable
    from clipdesk.gui.app import main

    sys.exit(main())
