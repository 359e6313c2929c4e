"""``python -m clipdesk.cli``: the ``clipdesk`` command."""

import sys

from clipdesk.cli import main

if __name__ == "__main__":
    sys.exit(main())
