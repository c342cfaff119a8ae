"""Public-key signature verification primitives, in Python.

This package holds only the mathematics of signature verification
(RSA PKCS#1 v1.5, DSA, ECDSA over short-Weierstrass curves, Ed25519 and
Ed448) plus the hash algorithms OpenPGP refers to by number.  It knows
nothing about OpenPGP packets: the caller decodes MPIs/keys and hashes
the signed data, then hands plain integers and byte strings to the
verify functions here.

Every ``verify`` function returns a ``bool`` and never raises for
malformed *values* (wrong lengths, out-of-range integers, points that
are not on the curve, ...): such input simply does not verify.  The one
exception that does escape is :class:`UnsupportedAlgorithm`, raised for
an algorithm identifier (hash id, curve OID) that this package does not
implement at all, so the caller can tell "bad signature" apart from
"cannot check this signature".

Only the standard library is used; where OpenSSL's libcrypto loads, it
does the heavy arithmetic (libcrypto.py), with the same results.
"""


class UnsupportedAlgorithm(Exception):
    """Raised for a hash algorithm id or curve OID that is not implemented."""
