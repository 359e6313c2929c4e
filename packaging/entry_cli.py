"""Frozen ``clipdesk`` (command line, and the app when no subcommand is given)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the decode pool spawns worker processes of this executable
    from clipdesk.cli import main

    sys.exit(main())
