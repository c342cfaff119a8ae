"""GnuPG's libgcrypt, through ctypes, for the CRC-24 of armor, when the host
has it (every host with GnuPG 2 does).

The armor checksum is computed over every key uploaded and every served view
stored: in Python (openpgp/crc24.py, already folded to run in C calls) a
10 KB key takes about 0.3 ms, two of them a sixth of an upload's time;
libgcrypt's CRC24-RFC2440 takes 3 us.  Not used in FIPS mode (CRC-24 is no
FIPS algorithm), when `CKS_PURE_PYTHON_CRYPTO=1` is set (as libcrypto.py), or
when its answer to the check value differs; then crc24.py computes it.
"""

from __future__ import annotations

import ctypes
from typing import Optional

from . import native

_GCRY_MD_CRC24_RFC2440 = 304
_GCRYCTL_TEST_ALGO = 8
_GCRYCTL_FIPS_MODE_P = 55
_CHECK = (b"123456789", 0x21CF02)  # CRC-24/OPENPGP's check value


class _LibGcrypt:
    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.gcry_check_version.restype = ctypes.c_char_p
        lib.gcry_check_version.argtypes = [ctypes.c_char_p]
        lib.gcry_control.restype = ctypes.c_uint
        lib.gcry_md_algo_info.restype = ctypes.c_uint
        lib.gcry_md_algo_info.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                          ctypes.c_void_p]
        lib.gcry_md_hash_buffer.restype = None
        lib.gcry_md_hash_buffer.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                            ctypes.c_size_t]
        if not lib.gcry_check_version(b"1.5.0"):  # (also what initializes it)
            raise OSError("libgcrypt older than 1.5.0")
        if lib.gcry_control(_GCRYCTL_FIPS_MODE_P, 0):
            raise OSError("libgcrypt is in FIPS mode")
        if lib.gcry_md_algo_info(_GCRY_MD_CRC24_RFC2440, _GCRYCTL_TEST_ALGO, None, None):
            raise OSError("libgcrypt has no CRC24-RFC2440")
        self._hash = lib.gcry_md_hash_buffer
        if self.crc24(_CHECK[0]) != _CHECK[1]:
            raise OSError("libgcrypt's CRC-24 gives another check value")

    def crc24(self, data: bytes) -> int:
        out = ctypes.create_string_buffer(3)
        self._hash(_GCRY_MD_CRC24_RFC2440, out, data, len(data))
        return int.from_bytes(out.raw, "big")


_native = native.Accelerator("gcrypt", _LibGcrypt, "armor checksums in Python")
available = _native.available
use = _native.use


def crc24(data: bytes) -> Optional[int]:
    """The CRC-24 of RFC 9580 section 6.1, or None when libgcrypt is not used."""
    lib = _native.lib
    return None if lib is None else lib.crc24(data)
