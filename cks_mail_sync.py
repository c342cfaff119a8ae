#!/usr/bin/env python3
"""CKS mail synchronization: merge the keys of one sync mail (standard input),
for the MTA (.forward or procmail); exit status per sysexits.h."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from cks.cli.mail_sync import main  # noqa: E402
from cks.cli.common import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
