#!/usr/bin/env python3
"""CKS HKP keyserver daemon.  `python3 cksd.py` serves on 127.0.0.1:11371 from
sqlite:///cks.db; see README.md for PostgreSQL and the configuration file."""

import signal

# A SIGHUP (`systemctl reload`) before the handler is set, while the imports
# run, would end cksd: ignored until then (cli/cksd.py's Hangup), and again
# from the end of run(main) on, while cksd exits.
signal.signal(signal.SIGHUP, signal.SIG_IGN)

import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from cks.cli.cksd import main  # noqa: E402
from cks.cli.common import run  # noqa: E402

if __name__ == "__main__":
    try:
        sys.exit(run(main))
    finally:  # (Python's exit puts back the default action of a signal it handled)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
