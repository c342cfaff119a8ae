#!/usr/bin/env python3
"""CKS peer list management: add, remove, list, set peers."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from cks.cli.sync_manage import main  # noqa: E402
from cks.cli.common import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
