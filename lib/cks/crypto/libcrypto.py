"""OpenSSL's libcrypto, through ctypes, for the arithmetic that dominates
signature verification, when the host has it.

Checking a key's signatures is most of what storing a key costs: Python's
`pow` takes about 0.5 ms for one RSA-4096 verification and 6 ms for a DSA
one, Ed25519 in pure Python about 3 ms.  The libcrypto that CPython's own
`ssl` and `hashlib` modules link does the same in a tenth of that.  It is
used only for the raw operations (a modular exponentiation, an ECDSA, Ed25519
or Ed448 check on values already checked here); every decision about what is
valid stays in this package's Python code, which is also the fallback
wherever libcrypto cannot be loaded (or `CKS_PURE_PYTHON_CRYPTO=1` is set):
results are the same either way, and the tests check that they are.
"""

from __future__ import annotations

import collections
import ctypes
import threading
from typing import Dict, Optional, Tuple

from . import native

_NID_ED25519, _NID_ED448 = 1087, 1088

MONTGOMERY_KEPT = 64
"""Moduli whose Montgomery context a thread keeps (_Montgomery)."""


class _LibCrypto:
    """The few libcrypto functions used, with their C signatures."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        void_p, char_p, c_int, size_t = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                         ctypes.c_size_t)
        self.lib = lib
        self._declare("BN_CTX_new", void_p, [])
        self._declare("BN_new", void_p, [])
        self._declare("BN_free", None, [void_p])
        self._declare("BN_bin2bn", void_p, [char_p, c_int, void_p])
        self._declare("BN_bn2binpad", c_int, [void_p, char_p, c_int])
        self._declare("BN_MONT_CTX_new", void_p, [])
        self._declare("BN_MONT_CTX_free", None, [void_p])
        self._declare("BN_MONT_CTX_set", c_int, [void_p, void_p, void_p])
        self._declare("BN_mod_exp_mont", c_int, [void_p, void_p, void_p, void_p, void_p, void_p])
        try:  # (a libcrypto without it does the two powers apart: mod_exp2)
            self._declare("BN_mod_exp2_mont", c_int, [void_p] * 8)
        except AttributeError:
            self.BN_mod_exp2_mont = None
        self._declare("ERR_clear_error", None, [])
        self._declare("EVP_PKEY_new_raw_public_key", void_p, [c_int, void_p, char_p, size_t])
        self._declare("EVP_PKEY_free", None, [void_p])
        self._declare("EVP_MD_CTX_new", void_p, [])
        self._declare("EVP_MD_CTX_free", None, [void_p])
        self._declare("EVP_DigestVerifyInit", c_int, [void_p, void_p, void_p, void_p, void_p])
        self._declare("EVP_DigestVerify", c_int, [void_p, char_p, size_t, char_p, size_t])
        self._declare("OBJ_txt2nid", c_int, [char_p])
        self._declare("EC_KEY_new_by_curve_name", void_p, [c_int])
        self._declare("EC_KEY_free", None, [void_p])
        self._declare("o2i_ECPublicKey", void_p, [ctypes.POINTER(void_p),
                                                  ctypes.POINTER(char_p), ctypes.c_long])
        self._declare("ECDSA_SIG_new", void_p, [])
        self._declare("ECDSA_SIG_free", None, [void_p])
        self._declare("ECDSA_SIG_set0", c_int, [void_p, void_p, void_p])
        self._declare("ECDSA_do_verify", c_int, [char_p, c_int, void_p, void_p])
        self._local = threading.local()  # a BN_CTX may not be shared between threads
        self._curves: Dict[bytes, int] = {}  # OID body -> OpenSSL's NID (0: not known)

    def _declare(self, name: str, restype, argtypes) -> None:
        function = getattr(self.lib, name)  # AttributeError: too old a libcrypto
        function.restype = restype
        function.argtypes = argtypes
        setattr(self, name, function)

    def _bn_ctx(self) -> int:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = self._local.ctx = self.BN_CTX_new()
            if not ctx:
                raise MemoryError("BN_CTX_new failed")
        return ctx

    def _montgomery(self) -> "_Montgomery":
        kept = getattr(self._local, "montgomery", None)
        if kept is None:
            kept = self._local.montgomery = _Montgomery(self)
        return kept

    def mod_exp(self, base: int, exponent: int, modulus: int) -> int:
        return self._power(self.BN_mod_exp_mont, (base, exponent), modulus)

    def mod_exp2(self, base1: int, exponent1: int, base2: int, exponent2: int,
                 modulus: int) -> int:
        return self._power(self.BN_mod_exp2_mont, (base1, exponent1, base2, exponent2),
                           modulus)

    def _power(self, function, numbers: Tuple[int, ...], modulus: int) -> int:
        """`function` (BN_mod_exp_mont or BN_mod_exp2_mont) of `numbers`, in
        its order, modulo `modulus`, with the thread's kept Montgomery context."""
        size = (modulus.bit_length() + 7) // 8
        bn_modulus, montgomery = self._montgomery().of(modulus, self._bn_ctx())
        bns = [self.BN_bin2bn(data, len(data), None) for data in map(_bytes_of, numbers)]
        result = self.BN_new()
        try:
            if not (all(bns) and result and function(
                    result, *bns, bn_modulus, self._bn_ctx(), montgomery) == 1):
                self.ERR_clear_error()
                raise ArithmeticError("%s failed" % function.__name__)
            out = ctypes.create_string_buffer(size)
            self.BN_bn2binpad(result, out, size)
            return int.from_bytes(out.raw, "big")
        finally:
            for number in bns + [result]:
                if number:
                    self.BN_free(number)

    def eddsa_verify(self, nid: int, public_key: bytes, message: bytes,
                     signature: bytes) -> bool:
        key = self.EVP_PKEY_new_raw_public_key(nid, None, public_key, len(public_key))
        if not key:  # not a point on the curve
            self.ERR_clear_error()
            return False
        ctx = self.EVP_MD_CTX_new()
        try:
            good = bool(ctx) and self.EVP_DigestVerifyInit(ctx, None, None, None, key) == 1 \
                and self.EVP_DigestVerify(ctx, signature, len(signature), message,
                                          len(message)) == 1
            if not good:
                self.ERR_clear_error()
            return good
        finally:
            if ctx:
                self.EVP_MD_CTX_free(ctx)
            self.EVP_PKEY_free(key)

    def ecdsa_verify(self, curve_oid: bytes, point: bytes, digest: bytes, r: int,
                     s: int) -> Optional[bool]:
        nid = self._curves.get(curve_oid)
        if nid is None:
            nid = self._curves[curve_oid] = self.OBJ_txt2nid(_dotted(curve_oid).encode())
        if not nid:
            return None  # a curve this libcrypto does not know
        key = ctypes.c_void_p(self.EC_KEY_new_by_curve_name(nid))
        sig = self.ECDSA_SIG_new()
        try:
            data = ctypes.c_char_p(point)
            if not (key and sig and self.o2i_ECPublicKey(ctypes.byref(key), ctypes.byref(data),
                                                        len(point))):
                self.ERR_clear_error()
                return False
            numbers = [self.BN_bin2bn(v, len(v), None) for v in (_bytes_of(r), _bytes_of(s))]
            if not all(numbers) or self.ECDSA_SIG_set0(sig, *numbers) != 1:
                for number in numbers:
                    if number:
                        self.BN_free(number)
                raise MemoryError("ECDSA_SIG_set0 failed")
            good = self.ECDSA_do_verify(digest, len(digest), sig, key) == 1
            if not good:
                self.ERR_clear_error()
            return good
        finally:
            if sig:
                self.ECDSA_SIG_free(sig)  # and r and s with it
            if key:
                self.EC_KEY_free(key)


class _Montgomery:
    """A thread's Montgomery contexts by modulus, the MONTGOMERY_KEPT used
    last.  BN_mod_exp sets one up at every call, a third of an RSA-4096
    verification's time, and a key's signatures share its modulus.  Freed with
    the thread (threading.local drops it)."""

    def __init__(self, lib: _LibCrypto) -> None:
        self.lib = lib
        self.kept: "collections.OrderedDict[int, Tuple[int, int]]" = collections.OrderedDict()

    def of(self, modulus: int, bn_ctx: int) -> Tuple[int, int]:
        """(the modulus as a BIGNUM, its BN_MONT_CTX)."""
        found = self.kept.get(modulus)
        if found is not None:
            self.kept.move_to_end(modulus)
            return found
        lib, data = self.lib, _bytes_of(modulus)
        pair = (lib.BN_bin2bn(data, len(data), None), lib.BN_MONT_CTX_new())
        if not (all(pair) and lib.BN_MONT_CTX_set(pair[1], pair[0], bn_ctx) == 1):
            self._free(pair)
            lib.ERR_clear_error()
            raise ArithmeticError("BN_MONT_CTX_set failed")
        self.kept[modulus] = pair
        if len(self.kept) > MONTGOMERY_KEPT:
            self._free(self.kept.popitem(last=False)[1])
        return pair

    def _free(self, pair: Tuple[int, int]) -> None:
        if pair[1]:
            self.lib.BN_MONT_CTX_free(pair[1])
        if pair[0]:
            self.lib.BN_free(pair[0])

    def __del__(self) -> None:
        for pair in self.kept.values():
            self._free(pair)


def _bytes_of(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


# (AttributeError, which load() catches: older than OpenSSL 1.1.1)
_native = native.Accelerator("crypto", _LibCrypto, "signature checks in pure Python")
available = _native.available
use = _native.use


def mod_exp(base: int, exponent: int, modulus: int) -> int:
    """base ** exponent % modulus, for non-negative base and exponent and an
    odd modulus above 1 (what RSA and DSA verification need)."""
    lib = _native.lib
    if lib is None or modulus <= 1 or not modulus & 1:  # (a damaged key's)
        return pow(base, exponent, modulus)
    return lib.mod_exp(base, exponent, modulus)


def mod_exp2(base1: int, exponent1: int, base2: int, exponent2: int, modulus: int) -> int:
    """base1 ** exponent1 * base2 ** exponent2 % modulus (DSA's verification),
    for non-negative bases and exponents and an odd modulus above 1: one
    chain of squarings for both powers (BN_mod_exp2_mont), 1.5 to 2 times
    as fast as the two apart (DSA, q of 256 bits: 1.92 against 3.03 ms with
    p of 4096 bits, 0.83 against 1.35 with 3072)."""
    lib = _native.lib
    if lib is None or modulus <= 1 or not modulus & 1 or not base1 % modulus \
            or not base2 % modulus:  # (a damaged key's; libcrypto takes 0 ** 0 for 0)
        return pow(base1, exponent1, modulus) * pow(base2, exponent2, modulus) % modulus
    if lib.BN_mod_exp2_mont is None:
        return lib.mod_exp(base1, exponent1, modulus) * lib.mod_exp(base2, exponent2,
                                                                    modulus) % modulus
    return lib.mod_exp2(base1, exponent1, base2, exponent2, modulus)


def ecdsa_verify(curve_oid: bytes, point: bytes, digest: bytes, r: int,
                 s: int) -> Optional[bool]:
    """ECDSA verification by libcrypto of (r, s) over `digest` (truncated to
    the order's length, as FIPS 186 does), for the curve with this OID body
    and an uncompressed SEC1 `point`; None when libcrypto is not used or does
    not know the curve (the caller checks in Python)."""
    lib = _native.lib
    if lib is None:
        return None
    return lib.ecdsa_verify(curve_oid, point, digest, r, s)


def _dotted(oid_body: bytes) -> str:
    """An OID's DER body as dotted text ("1.2.840.10045.3.1.7")."""
    arcs, value = [], 0
    for byte in oid_body:
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2) if arcs else 0
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first] + arcs[1:]) if arcs else ""


def eddsa_verify(nid_name: str, public_key: bytes, message: bytes,
                 signature: bytes) -> Optional[bool]:
    """RFC 8032 verification by libcrypto ("ed25519" or "ed448", empty
    context), or None when libcrypto is not used (the caller checks in Python)."""
    lib = _native.lib
    if lib is None:
        return None
    nid = _NID_ED25519 if nid_name == "ed25519" else _NID_ED448
    return lib.eddsa_verify(nid, public_key, message, signature)
