"""ECDSA verification over short-Weierstrass curves y^2 = x^3 + ax + b.

Curves are looked up by the DER OID body bytes that OpenPGP stores in
ECDSA key packets (RFC 9580 section 9.2).  Domain parameters come from
FIPS 186-4 (NIST P-curves), SEC 2 (secp256k1) and RFC 5639 (Brainpool);
all of these curves have cofactor 1.

Arithmetic uses Jacobian coordinates (x = X/Z^2, y = Y/Z^3) so that the
only modular inversions are in table set-up and the final conversion.
u1*G + u2*Q is computed as a fixed-base comb-like sum for G (a table of
signed-window multiples built lazily once per curve and cached) plus a
width-5 wNAF ladder for the variable point Q.  This is verification
code: it works on public data only and makes no attempt at constant
time.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from . import UnsupportedAlgorithm, libcrypto
from ._scalar import signed_windows, truncate_digest, wnaf

_BYTES = (bytes, bytearray, memoryview)

# Window widths: wNAF for the variable point, signed windows for G.
_Q_WIDTH = 5
_G_WIDTH = 7

Affine = Tuple[int, int]
Jacobian = Tuple[int, int, int]


class Curve:
    """Domain parameters of one short-Weierstrass curve with cofactor 1."""

    __slots__ = (
        "name", "oid", "p", "a", "b", "n", "gx", "gy",
        "field_bytes", "_a_mode", "_table",
    )

    def __init__(self, name: str, oid: bytes, p: int, a: int, b: int,
                 gx: int, gy: int, n: int) -> None:
        self.name = name
        self.oid = oid
        self.p = p
        self.a = a % p
        self.b = b % p
        self.gx = gx
        self.gy = gy
        self.n = n
        self.field_bytes = (p.bit_length() + 7) // 8
        # 0: a == 0, 1: a == -3, 2: anything else (selects the doubling formula)
        self._a_mode = 0 if self.a == 0 else 1 if self.a == p - 3 else 2
        self._table: Optional[List[List[Affine]]] = None

    def __repr__(self) -> str:
        return "<Curve %s>" % self.name

    def on_curve(self, x: int, y: int) -> bool:
        p = self.p
        return 0 <= x < p and 0 <= y < p and (y * y - (x * x + self.a) * x - self.b) % p == 0

    def decode_point(self, data: bytes) -> Optional[Affine]:
        """Decode a SEC1 point (0x04||X||Y, or compressed 0x02/0x03||X).

        Returns the affine coordinates, or None if the encoding is
        malformed or the point is not on the curve.  The point at
        infinity is never accepted.
        """
        if not isinstance(data, _BYTES):
            return None
        data = bytes(data)
        size = self.field_bytes
        if len(data) == 1 + 2 * size and data[0] == 4:
            x = int.from_bytes(data[1:1 + size], "big")
            y = int.from_bytes(data[1 + size:], "big")
            return (x, y) if self.on_curve(x, y) else None
        if len(data) == 1 + size and data[0] in (2, 3):
            p = self.p
            x = int.from_bytes(data[1:], "big")
            if x >= p:
                return None
            rhs = ((x * x + self.a) * x + self.b) % p
            # every curve here has p = 3 (mod 4), so sqrt is one power
            y = pow(rhs, (p + 1) // 4, p)
            if y * y % p != rhs:
                return None
            if (y & 1) != (data[0] & 1):
                if y == 0:
                    return None
                y = p - y
            return x, y
        return None

    # -- arithmetic -------------------------------------------------------

    def _double(self, x1: int, y1: int, z1: int) -> Jacobian:
        """2*P in Jacobian coordinates; Z = 0 is the point at infinity."""
        p = self.p
        yy = y1 * y1 % p
        s = 4 * x1 * yy % p
        mode = self._a_mode
        if mode == 0:
            m = 3 * x1 * x1 % p
        elif mode == 1:
            zz = z1 * z1 % p
            m = 3 * (x1 - zz) * (x1 + zz) % p
        else:
            zz = z1 * z1 % p
            m = (3 * x1 * x1 + self.a * zz * zz) % p
        x3 = (m * m - 2 * s) % p
        return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * y1 * z1 % p

    def _add_affine(self, x1: int, y1: int, z1: int, x2: int, y2: int) -> Jacobian:
        """P + (x2, y2) with P Jacobian and the second point affine."""
        if not z1:
            return x2, y2, 1
        p = self.p
        zz = z1 * z1 % p
        h = (x2 * zz - x1) % p
        r = (y2 * zz * z1 - y1) % p
        if not h:
            if not r:
                return self._double(x1, y1, z1)
            return 0, 1, 0
        hh = h * h % p
        hhh = h * hh % p
        v = x1 * hh % p
        x3 = (r * r - hhh - 2 * v) % p
        return x3, (r * (v - x3) - y1 * hhh) % p, z1 * h % p

    def _add(self, x1: int, y1: int, z1: int, x2: int, y2: int, z2: int, z2z2: int) -> Jacobian:
        """P1 + P2, both Jacobian (z2z2 = z2^2 precomputed); both finite."""
        p = self.p
        z1z1 = z1 * z1 % p
        u1 = x1 * z2z2 % p
        s1 = y1 * z2 * z2z2 % p
        h = (x2 * z1z1 - u1) % p
        r = (y2 * z1 * z1z1 - s1) % p
        if not h:
            if not r:
                return self._double(x1, y1, z1)
            return 0, 1, 0
        hh = h * h % p
        hhh = h * hh % p
        v = u1 * hh % p
        x3 = (r * r - hhh - 2 * v) % p
        return x3, (r * (v - x3) - s1 * hhh) % p, z1 * z2 * h % p

    def _to_affine(self, x: int, y: int, z: int) -> Optional[Affine]:
        if not z:
            return None
        p = self.p
        zi = pow(z, -1, p)
        zi2 = zi * zi % p
        return x * zi2 % p, y * zi2 * zi % p

    def _batch_to_affine(self, points: List[Jacobian]) -> List[Affine]:
        """Convert many finite Jacobian points with a single inversion."""
        p = self.p
        prefix = []
        acc = 1
        for _, _, z in points:
            prefix.append(acc)
            acc = acc * z % p
        inv = pow(acc, -1, p)  # inverse of the product of all Z
        out: List[Affine] = [(0, 0)] * len(points)
        for i in range(len(points) - 1, -1, -1):
            x, y, z = points[i]
            zi = inv * prefix[i] % p  # 1 / z_i
            inv = inv * z % p
            zi2 = zi * zi % p
            out[i] = (x * zi2 % p, y * zi2 * zi % p)
        return out

    def _base_table(self) -> List[List[Affine]]:
        """Rows i of j * 2**(W*i) * G, j = 1 .. 2**(W-1), built once."""
        table = self._table
        if table is None:
            width = _G_WIDTH
            half = 1 << (width - 1)
            rows = (self.n.bit_length() + width) // width
            table = []
            bx, by = self.gx, self.gy
            for _ in range(rows):
                row = [(bx, by, 1)]
                x, y, z = bx, by, 1
                for _ in range(half - 1):
                    x, y, z = self._add_affine(x, y, z, bx, by)
                    row.append((x, y, z))
                row = self._batch_to_affine(row)
                table.append(row)
                lx, ly = row[-1]
                bx, by = self._to_affine(*self._double(lx, ly, 1))
            self._table = table
        return table

    def _odd_multiples(self, qx: int, qy: int) -> List[Affine]:
        """Q, 3Q, 5Q, ... (2**(_Q_WIDTH-1) - 1)Q in affine coordinates."""
        # Q + 2Q + 2Q ... with 2Q in Jacobian form, so one inversion in total.
        dx, dy, dz = self._double(qx, qy, 1)
        p = self.p
        dzz = dz * dz % p
        out = [(qx, qy, 1)]
        x, y, z = qx, qy, 1
        for _ in range((1 << (_Q_WIDTH - 2)) - 1):
            x, y, z = self._add(x, y, z, dx, dy, dz, dzz)
            out.append((x, y, z))
        return self._batch_to_affine(out)

    def mul_add(self, u1: int, u2: int, qx: int, qy: int) -> Optional[Affine]:
        """u1*G + u2*Q for 0 <= u1, u2 < n; None for the point at infinity."""
        p = self.p
        double = self._double
        add = self._add_affine
        x, y, z = 0, 1, 0
        if u2:
            odd = self._odd_multiples(qx, qy)
            for d in reversed(wnaf(u2, _Q_WIDTH)):
                if z:
                    x, y, z = double(x, y, z)
                if d > 0:
                    x2, y2 = odd[d >> 1]
                    x, y, z = add(x, y, z, x2, y2)
                elif d < 0:
                    x2, y2 = odd[(-d) >> 1]
                    x, y, z = add(x, y, z, x2, p - y2)
        if u1:
            table = self._base_table()
            for row, d in zip(table, signed_windows(u1, _G_WIDTH, len(table))):
                if d > 0:
                    x2, y2 = row[d - 1]
                    x, y, z = add(x, y, z, x2, y2)
                elif d < 0:
                    x2, y2 = row[-d - 1]
                    x, y, z = add(x, y, z, x2, p - y2)
        return self._to_affine(x, y, z)


def _oid(hex_body: str) -> bytes:
    return bytes.fromhex(hex_body)


_CURVE_LIST = [
    # FIPS 186-4 D.1.2.3
    Curve(
        "NIST P-256", _oid("2a8648ce3d030107"),
        p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        a=-3,
        b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
        n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    ),
    # FIPS 186-4 D.1.2.4
    Curve(
        "NIST P-384", _oid("2b81040022"),
        p=int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"
              "FFFFFFFF0000000000000000FFFFFFFF", 16),
        a=-3,
        b=int("B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875A"
              "C656398D8A2ED19D2A85C8EDD3EC2AEF", 16),
        gx=int("AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38"
               "5502F25DBF55296C3A545E3872760AB7", 16),
        gy=int("3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C0"
               "0A60B1CE1D7E819D7A431D7C90EA0E5F", 16),
        n=int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
              "581A0DB248B0A77AECEC196ACCC52973", 16),
    ),
    # FIPS 186-4 D.1.2.5
    Curve(
        "NIST P-521", _oid("2b81040023"),
        p=(1 << 521) - 1,
        a=-3,
        b=int("0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF1"
              "09E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B50"
              "3F00", 16),
        gx=int("00C6858E06B70404E9CD9E3ECB662395B4429C648139053FB521F828AF606B4D"
               "3DBAA14B5E77EFE75928FE1DC127A2FFA8DE3348B3C1856A429BF97E7E31C2E5"
               "BD66", 16),
        gy=int("011839296A789A3BC0045C8A5FB42C7D1BD998F54449579B446817AFBD17273E"
               "662C97EE72995EF42640C550B9013FAD0761353C7086A272C24088BE94769FD1"
               "6650", 16),
        n=int("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
              "FFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E9138"
              "6409", 16),
    ),
    # RFC 5639 section 3.4
    Curve(
        "brainpoolP256r1", _oid("2b2403030208010107"),
        p=0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377,
        a=0x7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9,
        b=0x26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6,
        gx=0x8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262,
        gy=0x547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997,
        n=0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
    ),
    # RFC 5639 section 3.6
    Curve(
        "brainpoolP384r1", _oid("2b240303020801010b"),
        p=int("8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B412B1DA197FB71123"
              "ACD3A729901D1A71874700133107EC53", 16),
        a=int("7BC382C63D8C150C3C72080ACE05AFA0C2BEA28E4FB22787139165EFBA91F90F"
              "8AA5814A503AD4EB04A8C7DD22CE2826", 16),
        b=int("04A8C7DD22CE28268B39B55416F0447C2FB77DE107DCD2A62E880EA53EEB62D5"
              "7CB4390295DBC9943AB78696FA504C11", 16),
        gx=int("1D1C64F068CF45FFA2A63A81B7C13F6B8847A3E77EF14FE3DB7FCAFE0CBD10E8"
               "E826E03436D646AAEF87B2E247D4AF1E", 16),
        gy=int("8ABE1D7520F9C2A45CB1EB8E95CFD55262B70B29FEEC5864E19C054FF9912928"
               "0E4646217791811142820341263C5315", 16),
        n=int("8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7"
              "CF3AB6AF6B7FC3103B883202E9046565", 16),
    ),
    # RFC 5639 section 3.7
    Curve(
        "brainpoolP512r1", _oid("2b240303020801010d"),
        p=int("AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330871"
              "7D4D9B009BC66842AECDA12AE6A380E62881FF2F2D82C68528AA6056583A48F3", 16),
        a=int("7830A3318B603B89E2327145AC234CC594CBDD8D3DF91610A83441CAEA9863BC"
              "2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A72BF2C7B9E7C1AC4D77FC94CA", 16),
        b=int("3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A7"
              "2BF2C7B9E7C1AC4D77FC94CADC083E67984050B75EBAE5DD2809BD638016F723", 16),
        gx=int("81AEE4BDD82ED9645A21322E9C4C6A9385ED9F70B5D916C1B43B62EEF4D0098E"
               "FF3B1F78E2D0D48D50D1687B93B97D5F7C6D5047406A5E688B352209BCB9F822", 16),
        gy=int("7DDE385D566332ECC0EABFA9CF7822FDF209F70024A57B1AA000C55B881F8111"
               "B2DCDE494A5F485E5BCA4BD88A2763AED1CA2B2FA8F0540678CD1E0F3AD80892", 16),
        n=int("AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330870"
              "553E5C414CA92619418661197FAC10471DB1D381085DDADDB58796829CA90069", 16),
    ),
    # SEC 2 v2 section 2.4.1
    Curve(
        "secp256k1", _oid("2b8104000a"),
        p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F,
        a=0,
        b=7,
        gx=0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
        gy=0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
        n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    ),
]

# OID body bytes (as in an OpenPGP ECDSA/ECDH key packet) -> curve
CURVES: Dict[bytes, Curve] = {c.oid: c for c in _CURVE_LIST}


def get_curve(curve_oid: bytes) -> Curve:
    """Curve for an OID body; raises UnsupportedAlgorithm if unknown."""
    curve = None
    if isinstance(curve_oid, _BYTES):
        curve = CURVES.get(bytes(curve_oid))
    if curve is None:
        raise UnsupportedAlgorithm("unsupported elliptic curve OID %r" % (curve_oid,))
    return curve


def ecdsa_verify(curve_oid: bytes, point: bytes, digest: bytes, r: int, s: int) -> bool:
    """Check an ECDSA signature (r, s) over ``digest``.

    ``point`` is the public key in SEC1 form as OpenPGP stores it
    (0x04||X||Y; compressed 0x02/0x03||X is accepted too).  The digest is
    truncated to the bit length of the group order.  Raises
    UnsupportedAlgorithm only for an unknown curve OID.
    """
    curve = get_curve(curve_oid)
    if not (isinstance(r, int) and isinstance(s, int) and isinstance(digest, _BYTES)):
        return False
    n = curve.n
    if not (0 < r < n and 0 < s < n):
        return False
    q = curve.decode_point(point)
    if q is None:
        return False
    checked = libcrypto.ecdsa_verify(
        curve.oid, b"\x04" + q[0].to_bytes(curve.field_bytes, "big")
        + q[1].to_bytes(curve.field_bytes, "big"), bytes(digest), r, s)
    if checked is not None:
        return checked
    z = truncate_digest(bytes(digest), n.bit_length())
    w = pow(s, -1, n)
    res = curve.mul_add(z * w % n, r * w % n, q[0], q[1])
    if res is None:
        return False
    return res[0] % n == r
