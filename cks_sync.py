#!/usr/bin/env python3
"""CKS synchronization, for cron: one pass over the peers, pushing the queued
keys to the push peers and running a reconciliation round with each recon peer."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from cks.cli.sync import main  # noqa: E402
from cks.cli.common import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
