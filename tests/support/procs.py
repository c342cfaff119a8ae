"""Run the project's tools as a user would: `python3 TOOL.py ...` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, Optional, Sequence

from . import ROOT


def tool(name: str, args: Sequence[str], input: Optional[bytes] = None,
         env: Optional[Dict[str, str]] = None, timeout: float = 120,
         cwd: Optional[str] = None, under: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run ROOT/NAME (e.g. cks_admin.py) with `args` (under a command that runs
    another, e.g. setpriv); never raises on exit codes."""
    full_env = dict(os.environ, TZ="UTC", PYTHONDONTWRITEBYTECODE="1")
    full_env.pop("CKS_DB", None)
    full_env.pop("CKS_CONFIG", None)
    full_env.update(env or {})
    return subprocess.run(list(under) + [sys.executable, os.path.join(ROOT, name)] + list(args),
                          input=input, capture_output=True, env=full_env, timeout=timeout,
                          cwd=cwd)
