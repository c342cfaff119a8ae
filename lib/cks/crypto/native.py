"""Loading a host's C library through ctypes as an optional accelerator
(libcrypto.py, libgcrypt.py): none when `CKS_PURE_PYTHON_CRYPTO=1` is set,
the library is missing, or it lacks what the wrapper needs."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from typing import Callable, Generic, Optional, TypeVar

log = logging.getLogger("cks.crypto")

Wrapper = TypeVar("Wrapper")


def load(name: str, wrap: Callable[[ctypes.CDLL], Wrapper], fallback: str) -> Optional[Wrapper]:
    """wrap(the library `name`), or None (logged, with what is done instead:
    `fallback`) when it cannot be used."""
    if os.environ.get("CKS_PURE_PYTHON_CRYPTO", "") not in ("", "0"):
        return None
    found = ctypes.util.find_library(name)
    if not found:
        return None
    try:
        return wrap(ctypes.CDLL(found))
    except (OSError, AttributeError) as exc:  # missing, too old, or unfit
        log.debug("lib%s not used (%s): %s", name, exc, fallback)
        return None


class Accelerator(Generic[Wrapper]):
    """The library's wrapper loaded once (load()), or None: `lib`, which the
    module it speeds up reads at each call."""

    def __init__(self, name: str, wrap: Callable[[ctypes.CDLL], Wrapper], fallback: str) -> None:
        self._how = (name, wrap, fallback)
        self.lib: Optional[Wrapper] = load(*self._how)

    def available(self) -> bool:
        return self.lib is not None

    def use(self, enabled: bool) -> None:
        """Turn it off (or back on, where it loads); for tests and for
        comparing the two paths."""
        self.lib = load(*self._how) if enabled else None
