#!/usr/bin/env python3
"""CKS synchronization: one pass pushing queued keys to the peers, for cron."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from cks.cli.sync import main  # noqa: E402
from cks.cli.common import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
