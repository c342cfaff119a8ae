"""Make ``import cks`` work when running this directory on its own."""

import os
import sys

_LIB = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "lib"))
if _LIB not in sys.path:
    sys.path.insert(0, _LIB)

import pytest  # noqa: E402

from cks.crypto import eddsa, libcrypto  # noqa: E402


@pytest.fixture(autouse=True, params=["libcrypto", "pure-python"])
def arithmetic(request):
    """Every test here runs twice: with libcrypto doing the arithmetic (where
    it loads) and in pure Python; both must give the same answers."""
    if request.param == "libcrypto" and not libcrypto.available():
        pytest.skip("libcrypto cannot be loaded here")
    libcrypto.use(request.param == "libcrypto")
    # decoded public keys are kept: each leg decodes them itself
    eddsa._ed25519_decode.cache_clear()
    eddsa._ed448_decode.cache_clear()
    yield request.param
    libcrypto.use(True)
