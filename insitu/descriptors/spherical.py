"""Exact coefficients for the bond-orientational-order kernels: the recurrence coefficients
of the fully normalised associated Legendre functions (Condon-Shortley phase) and Wigner 3j
symbols (Racah formula, rational arithmetic) for the third-order invariants w_l."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["legendre_coefficients", "wigner3j", "wl_triples", "wl_columns"]

_FOUR_PI = 4.0 * math.pi


# ---------------------------------------------------------------------------------------
# coefficients
def legendre_coefficients(lmax: int):
    a = np.zeros((lmax + 1, lmax + 1))
    b = np.zeros((lmax + 1, lmax + 1))
    for m in range(lmax + 1):
        for l in range(m + 2, lmax + 1):
            a[l, m] = math.sqrt((4.0 * l * l - 1.0) / (l * l - m * m))
            b[l, m] = math.sqrt(((l - 1.0) ** 2 - m * m) / (4.0 * (l - 1.0) ** 2 - 1.0))
    diag = np.zeros(lmax + 1)
    sub = np.zeros(lmax + 1)
    diag[0] = math.sqrt(1.0 / _FOUR_PI)
    for m in range(1, lmax + 1):
        diag[m] = -math.sqrt((2.0 * m + 1.0) / (2.0 * m))
    for m in range(lmax + 1):
        sub[m] = math.sqrt(2.0 * m + 3.0)
    return a, b, diag, sub


def wigner3j(j1: int, j2: int, j3: int, m1: int, m2: int, m3: int) -> float:
    """Wigner 3j symbol (Racah formula, exact rational arithmetic)."""
    if m1 + m2 + m3 != 0 or abs(m1) > j1 or abs(m2) > j2 or abs(m3) > j3:
        return 0.0
    if j3 < abs(j1 - j2) or j3 > j1 + j2:
        return 0.0
    f = math.factorial
    delta = Fraction(f(j1 + j2 - j3) * f(j1 - j2 + j3) * f(-j1 + j2 + j3), f(j1 + j2 + j3 + 1))
    pref = delta * f(j1 + m1) * f(j1 - m1) * f(j2 + m2) * f(j2 - m2) * f(j3 + m3) * f(j3 - m3)
    s = Fraction(0)
    kmin = max(0, j2 - j3 - m1, j1 - j3 + m2)
    kmax = min(j1 + j2 - j3, j1 - m1, j2 + m2)
    for k in range(kmin, kmax + 1):
        den = (f(k) * f(j3 - j2 + k + m1) * f(j3 - j1 + k - m2) * f(j1 + j2 - j3 - k)
               * f(j1 - k - m1) * f(j2 - k + m2))
        s += Fraction((-1) ** k, den)
    sign = -1 if (j1 - j2 - m3) % 2 else 1
    # sqrt(pref) * s, evaluated as sign(s) * sqrt(pref * s^2) to keep precision
    val = math.sqrt(float(pref * s * s))
    return float(sign * (1 if s >= 0 else -1) * val)


def wl_triples(ls) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The terms of w_l = sum over m1 + m2 + m3 = 0 of (l l l; m1 m2 m3) q_lm1 q_lm2 q_lm3
    for each l of ``ls``, one per class of equal terms: (start (len(ls) + 1,) offsets,
    m (T, 3) int64, c (T,) float64), w_l being the sum of c Re(q_m1 q_m2 q_m3) over its
    rows.

    For even l the symbol is symmetric under any permutation of its columns and the
    m -> -m mirror of a term is its complex conjugate, so one sorted triple stands for its
    permutations (c includes their number) and for its mirror (a factor 2 on the real
    part). For odd l the symbol changes sign under a swap of two equal columns while the
    product does not: w_l = 0 identically, and the list is empty."""
    start, rows, coefs = [0], [], []
    for l in ls:
        for m1 in range(-l, 1 if l % 2 == 0 else -l):
            for m2 in range(m1, l + 1):
                m3 = -m1 - m2
                if m3 < m2 or m3 > l:
                    continue
                triple, mirror = (m1, m2, m3), (-m3, -m2, -m1)
                if triple < mirror:
                    continue
                w = wigner3j(l, l, l, m1, m2, m3)
                if w == 0.0:
                    continue
                permutations = len({(m1, m2, m3), (m1, m3, m2), (m2, m1, m3), (m2, m3, m1),
                                     (m3, m1, m2), (m3, m2, m1)})
                rows.append(triple)
                coefs.append(w * permutations * (1.0 if triple == mirror else 2.0))
        start.append(len(rows))
    return (np.array(start, np.int64), np.array(rows, np.int64).reshape(-1, 3),
            np.array(coefs, np.float64))


def wl_columns(ls, q_offsets: np.ndarray, wl: bool = True) -> tuple:
    """The terms of :func:`wl_triples` as :func:`invariants_kernel` reads them: (start
    (len(ls) + 1,), column of q_lm (T, 3) -- offset of l plus |m| --, sign of its real
    and of its imaginary part (T, 3) -- q_l,-m = (-1)^m conj(q_lm) --, multiplicity
    (T,)); no terms when ``wl`` is False."""
    start, triples, coefs = wl_triples(ls) if wl else (
        np.zeros(len(ls) + 1, np.int64), np.zeros((0, 3), np.int64), np.zeros(0))
    block = np.repeat(np.arange(len(ls)), np.diff(start))
    columns = np.asarray(q_offsets)[block][:, None] + np.abs(triples)
    real = np.where((triples < 0) & (triples % 2 == 1), -1.0, 1.0)
    imaginary = np.where(triples < 0, -real, real)
    return start, columns.astype(np.int64), real, imaginary, coefs
