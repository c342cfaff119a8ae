"""Recovering a set difference from sample values (the answerer's side of recon).

Two nodes' sample values at a point k are the products of (k - e) over their
elements; their ratio is A(k) / B(k), where A has a root at each element only
the remote side holds and B at each element only the local side holds.  With
the size difference d = deg A - deg B known, MBAR points determine A / B when
deg A + deg B <= MBAR (Minsky, Trachtenberg, Zippel).  A sixth point checks
the answer, and the roots of A and B are the two halves of the difference.

Polynomials are lists of coefficients mod P, lowest degree first, with no
trailing zeros: [] is the zero polynomial, [c] a constant.  Everything
returns new lists; nothing is modified in place.
"""

import random
from typing import List, Optional, Sequence, Set, Tuple

from .field import MBAR, NUM_SAMPLES, P, inverse, sample_points

Poly = List[int]

_RNG = random.Random()
_SPLIT_ATTEMPTS = 64
"""Each random split of a polynomial with distinct roots works with
probability about 1/2 or better, so 64 failures in a row mean a bug."""


# Polynomials ---------------------------------------------------------------

def poly_trim(a: Sequence[int]) -> Poly:
    """a reduced mod P without trailing zero coefficients (the normal form)."""
    out = [c % P for c in a]
    while out and out[-1] == 0:
        out.pop()
    return out


def poly_degree(a: Poly) -> int:
    """The degree of a normalized polynomial; -1 for the zero polynomial."""
    return len(a) - 1


def poly_eval(a: Poly, x: int) -> int:
    """a(x) mod P, by Horner's rule."""
    acc = 0
    for c in reversed(a):
        acc = (acc * x + c) % P
    return acc


def poly_add(a: Poly, b: Poly) -> Poly:
    """a + b."""
    if len(a) < len(b):
        a, b = b, a
    return poly_trim([c + (b[i] if i < len(b) else 0) for i, c in enumerate(a)])


def poly_sub(a: Poly, b: Poly) -> Poly:
    """a - b."""
    return poly_add(a, [-c for c in b])


def poly_mul(a: Poly, b: Poly) -> Poly:
    """a * b (schoolbook: the degrees here are at most 2 * MBAR)."""
    if not a or not b:
        return []
    out = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return poly_trim(out)


def poly_monic(a: Poly) -> Poly:
    """a scaled to leading coefficient 1 (the zero polynomial stays zero)."""
    if not a:
        return []
    scale = inverse(a[-1])
    return [c * scale % P for c in a]


def poly_divmod(a: Poly, b: Poly) -> Tuple[Poly, Poly]:
    """(q, r) with a = q * b + r and deg r < deg b; b must not be zero."""
    if not b:
        raise ZeroDivisionError("polynomial division by zero")
    rem = list(a)
    db = len(b) - 1
    lead_inv = inverse(b[-1])
    quot = [0] * max(len(rem) - db, 0)
    for i in range(len(quot) - 1, -1, -1):
        c = rem[i + db] * lead_inv % P
        quot[i] = c
        if c:
            for j, bj in enumerate(b):
                rem[i + j] = (rem[i + j] - c * bj) % P
    return poly_trim(quot), poly_trim(rem[:db])


def poly_gcd(a: Poly, b: Poly) -> Poly:
    """The monic greatest common divisor of a and b (zero if both are zero)."""
    while b:
        a, b = b, poly_divmod(a, b)[1]
    return poly_monic(a)


def poly_powmod(base: Poly, n: int, modulus: Poly) -> Poly:
    """base ** n mod modulus, by square and multiply (n is ~129 bits here).

    This is where reconcile spends nearly all its time, so residues stay
    fixed-length lists reduced by the monic modulus in _reduce.  The bits go
    most significant first, so every multiplication is by base itself: for
    the linear bases of root finding that is nearly free (zeros are skipped).
    """
    if n < 0:
        raise ValueError("negative exponent")
    monic = poly_monic(modulus)
    if not monic:
        raise ZeroDivisionError("polynomial division by zero")
    size = len(monic) - 1
    result = _padded(poly_divmod([1], monic)[1], size)
    factor = _padded(poly_divmod(base, monic)[1], size)
    for bit in bin(n)[2:]:
        result = _reduce(_square(result), monic)
        if bit == "1":
            result = _reduce(_product(factor, result), monic)
    return poly_trim(result)


def _padded(a: Poly, size: int) -> List[int]:
    """a as exactly size coefficients (a residue mod a degree-size polynomial)."""
    return a + [0] * (size - len(a))


def _product(a: List[int], b: List[int]) -> List[int]:
    """The coefficients of a * b, unreduced (they are reduced once, in _reduce).

    Zero coefficients are skipped, so a sparse a (a linear base) costs little.
    """
    prod = [0] * (len(a) + len(b) - 1)
    terms = [(j, y) for j, y in enumerate(b) if y]
    for i, x in enumerate(a):
        if x:
            for j, y in terms:
                prod[i + j] += x * y
    return prod


def _square(a: List[int]) -> List[int]:
    """The coefficients of a * a, unreduced: each cross term computed once."""
    prod = [0] * (2 * len(a) - 1)
    for i, x in enumerate(a):
        if x:
            prod[2 * i] += x * x
            double = 2 * x
            for j in range(i + 1, len(a)):
                prod[i + j] += double * a[j]
    return prod


def _reduce(prod: List[int], monic: Poly) -> List[int]:
    """An unreduced product of two residues, reduced mod monic and mod P.

    The result has exactly deg(monic) coefficients (a fixed-length residue).
    """
    size = len(monic) - 1
    for top in range(len(prod) - 1, size - 1, -1):
        c = prod[top] % P
        if c:
            shift = top - size
            for j in range(size):
                prod[shift + j] -= c * monic[j]
    return [c % P for c in prod[:size]]


def poly_from_roots(roots: Sequence[int]) -> Poly:
    """The monic polynomial product of (z - r) over roots."""
    out = [1]
    for r in roots:
        out = poly_mul(out, [-r, 1])
    return out


# Linear algebra ------------------------------------------------------------

def _eliminate(rows: List[List[int]], pivot_row: int, col: int) -> None:
    """Scale rows[pivot_row] to a 1 in col, then clear col in every other row."""
    scale = inverse(rows[pivot_row][col])
    pivot = [x * scale % P for x in rows[pivot_row]]
    rows[pivot_row] = pivot
    for i, row in enumerate(rows):
        factor = row[col]
        if i != pivot_row and factor:
            rows[i] = [(x - factor * y) % P for x, y in zip(row, pivot)]


def solve_mod_p(rows: Sequence[Sequence[int]]) -> Optional[List[int]]:
    """One solution of the augmented system rows ([coefficients... | rhs]) mod P.

    Gauss-Jordan elimination; a column without a pivot is a free variable
    and set to 0.  A singular system is normal (equal sets give one: A and B
    then share arbitrary factors, removed later by the gcd).  Only an
    inconsistent system (0 = nonzero) has no solution: None.
    """
    work = [[x % P for x in row] for row in rows]
    unknowns = len(work[0]) - 1 if work else 0
    pivots: List[int] = []
    for col in range(unknowns):
        row = next((i for i in range(len(pivots), len(work)) if work[i][col]), None)
        if row is None:
            continue
        top = len(pivots)
        work[top], work[row] = work[row], work[top]
        _eliminate(work, top, col)
        pivots.append(col)
    if any(row[-1] for row in work[len(pivots):]):
        return None
    solution = [0] * unknowns
    for i, col in enumerate(pivots):
        solution[col] = work[i][-1]
    return solution


# Interpolation -------------------------------------------------------------

def _system(values: Sequence[int], points: Sequence[int], ma: int, mb: int) -> List[List[int]]:
    """Rows of A(k) = f * B(k) for monic A, B of degrees ma, mb, one per point.

    Unknowns are A's and B's lower coefficients; the leading 1s move to the
    right-hand side: [k^0..k^(ma-1), -f*k^0..-f*k^(mb-1) | f*k^mb - k^ma].
    """
    rows = []
    for k, f in zip(points, values):
        powers = [pow(k, i, P) for i in range(max(ma, mb) + 1)]
        row = powers[:ma] + [-f * x % P for x in powers[:mb]]
        rows.append(row + [(f * powers[mb] - powers[ma]) % P])
    return rows


def interpolate(values: Sequence[int], points: Sequence[int],
                d: int) -> Optional[Tuple[Poly, Poly]]:
    """The reduced monic (A, B) with A(k) / B(k) = values at points, deg A - deg B = d.

    With m = len(values) points (one fewer when m + d is odd, so the degrees
    are whole), deg A = (m + d) / 2 and deg B = (m - d) / 2.  None when
    |d| > m or the system is inconsistent.
    """
    m = len(values)
    if abs(d) > m:
        return None
    if (m + d) % 2:
        m -= 1
    ma, mb = (m + d) // 2, (m - d) // 2
    solution = solve_mod_p(_system(values[:m], points[:m], ma, mb))
    if solution is None:
        return None
    a = poly_trim(solution[:ma] + [1])
    b = poly_trim(solution[ma:] + [1])
    g = poly_gcd(a, b)
    return poly_divmod(a, g)[0], poly_divmod(b, g)[0]


# Roots ---------------------------------------------------------------------

def _half_power(f: Poly, a: int) -> Poly:
    """(z + a)^((P-1)/2) mod f: 1 at the roots r of f with r + a a nonzero square.

    gcd(this - 1, f) is then the product of about half of f's linear factors
    (Cantor-Zassenhaus).
    """
    return poly_powmod([a, 1], (P - 1) // 2, f)


def _frobenius_fixes_z(f: Poly, a: int, half: Poly) -> bool:
    """The z^P = z mod f check, reusing a half power instead of a fresh powmod.

    In characteristic P, (z + a)^P = z^P + a, and (z + a)^P = (z + a) * half^2;
    so z^P = z mod f exactly when (z + a) * half^2 = z + a mod f (deg f >= 2).
    """
    linear = poly_trim([a, 1])
    return poly_divmod(poly_mul(linear, poly_mul(half, half)), f)[1] == linear


def _quadratic_roots(f: Poly) -> Optional[Set[int]]:
    """The two distinct roots of a degree-2 f, or None if it has no such pair.

    The quadratic formula needs one scalar square root instead of a
    polynomial powmod; P = 3 mod 4, so a square root of s is s^((P+1)/4)
    when s is a square at all (checked by squaring it back).
    """
    c, b, a = f
    disc = (b * b - 4 * a * c) % P
    root = pow(disc, (P + 1) // 4, P)
    if disc == 0 or root * root % P != disc:
        return None
    scale = inverse(2 * a)
    return {(-b + root) * scale % P, (-b - root) * scale % P}


def _split_roots(f: Poly, rng: random.Random, check: bool) -> Optional[Set[int]]:
    """The roots of f if it is a product of distinct (z - r); None otherwise.

    With check, the first half power also verifies that f splits that way;
    only the top call needs it, since the factors of such an f split too.
    """
    degree = poly_degree(f)
    if degree <= 0:
        return set()
    if degree == 1:
        return {-f[0] * inverse(f[1]) % P}
    if degree == 2:
        return _quadratic_roots(f)
    for _ in range(_SPLIT_ATTEMPTS):
        a = rng.randrange(P)
        half = _half_power(f, a)
        if check and not _frobenius_fixes_z(f, a, half):
            return None
        check = False
        g = poly_gcd(poly_sub(half, [1]), f)
        if 0 < poly_degree(g) < degree:
            left = _split_roots(g, rng, False)
            right = _split_roots(poly_divmod(f, g)[0], rng, False)
            if left is None or right is None:
                return None
            return left | right
    return None


def find_roots(f: Poly, rng: Optional[random.Random] = None) -> Optional[Set[int]]:
    """The roots of f if it is a product of distinct (z - r); None otherwise.

    Degree 2 is settled by its discriminant; from degree 3 on, z^P = z mod f
    is checked (see _frobenius_fixes_z), then Cantor-Zassenhaus splits f
    recursively with gcd((z + a)^((P-1)/2) - 1, f) for random a.
    """
    return _split_roots(f, rng or _RNG, True)


# Reconciliation ------------------------------------------------------------

def _ratios(remote: Sequence[int], local: Sequence[int]) -> Optional[List[int]]:
    """remote[i] / local[i]; None if a value is 0 (an element is a sample point)."""
    if any(x % P == 0 for x in remote) or any(x % P == 0 for x in local):
        return None
    return [r * inverse(l) % P for r, l in zip(remote, local)]


def _verified(a: Poly, b: Poly, point: int, value: int) -> bool:
    """Whether A(point) / B(point) equals the sample ratio kept back for checking."""
    denominator = poly_eval(b, point)
    return denominator != 0 and poly_eval(a, point) * inverse(denominator) % P == value


def reconcile(local_samples: Sequence[int], local_size: int,
              remote_samples: Sequence[int], remote_size: int,
              rng: Optional[random.Random] = None) -> Optional[Tuple[Set[int], Set[int]]]:
    """(only the remote has, only I have) from two nodes' sample values and sizes.

    None when the difference cannot be recovered here: a size difference
    above MBAR, a failed check at the verification point, a polynomial that
    does not split into distinct roots, or a zero sample value.  The caller
    then recurses into the node's children.  Sample lists must have
    NUM_SAMPLES values (ValueError otherwise: the message was malformed).
    """
    if len(local_samples) != NUM_SAMPLES or len(remote_samples) != NUM_SAMPLES:
        raise ValueError("expected %d sample values" % NUM_SAMPLES)
    d = remote_size - local_size
    values = _ratios(remote_samples, local_samples)
    if values is None or abs(d) > MBAR:
        return None
    points = sample_points()
    fraction = interpolate(values[:MBAR], points[:MBAR], d)
    if fraction is None:
        return None
    a, b = fraction
    if not _verified(a, b, points[MBAR], values[MBAR]):
        return None
    remote_only, local_only = find_roots(a, rng), find_roots(b, rng)
    if remote_only is None or local_only is None:
        return None
    return remote_only, local_only
