"""Ordering of neighbour candidates (numba kernels shared by the cell-list search and the
Neighbors Map): rank by squared distance, ties by global id, and the n nearest first.

Distances equal to within a relative ``TIE_RTOL`` (on the squared distance) are ties, broken
by the neighbour's global atom id, then by its image / point index, so that neighbour order
does not depend on the order of the atoms or on the MPI decomposition, also in perfect
crystals where floating-point noise would otherwise order equidistant neighbours.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["TIE_RTOL", "rank_order", "fix_ties", "nearest_first"]

TIE_RTOL = 1e-10
"""Relative tolerance on squared distances below which two distances count as a tie."""


@njit(cache=True, inline="always", error_model="numpy")
def rank_order(d2, d2bits, n, keys, perm):
    """perm[0:n] = indices 0..n-1 ordered by d2 (exact ties by index).

    d2bits is an int64 view of d2 (non-negative doubles order like their bit patterns);
    the low bits of each key are replaced by the item index, making keys unique; the rank
    of each key is counted without branches (vectorises well for the ~40 items here).
    """
    nbits = 1
    while (1 << nbits) < n:
        nbits += 1
    mask = (1 << nbits) - 1
    for k in range(n):
        keys[k] = (d2bits[k] & ~mask) | k
    for k in range(n):
        kk = keys[k]
        r = 0
        for k2 in range(n):
            r += keys[k2] < kk
        perm[r] = k


@njit(cache=True, inline="always", error_model="numpy")
def fix_ties(perm, d2, n, limit, tid, tsec):
    """Re-sort runs of (relative TIE_RTOL) equal d2 in perm[0:n] by (tid, tsec).

    Only runs starting before `limit` are treated.  Returns the number of runs fixed.
    """
    fixed = 0
    i = 0
    while i < n - 1 and i < limit:
        j = i
        while j + 1 < n and d2[perm[j + 1]] - d2[perm[j]] <= TIE_RTOL * d2[perm[j + 1]]:
            j += 1
        if j > i:
            fixed += 1
            for a in range(i + 1, j + 1):
                x = perm[a]
                b = a
                while b > i and (tid[perm[b - 1]] > tid[x] or (tid[perm[b - 1]] == tid[x]
                                                               and tsec[perm[b - 1]] > tsec[x])):
                    perm[b] = perm[b - 1]
                    b -= 1
                perm[b] = x
        i = j + 1
    return fixed


@njit(cache=True, inline="always", error_model="numpy")
def nearest_first(cd2, slot, m, n_max, work):
    """Move the candidates that can be among the n_max nearest (squared distance up to the
    n_max-th smallest, and any tie of it) to the front of ``cd2`` and of ``slot`` (what
    identifies each candidate); returns their number q (>= n_max). Sorting only those
    gives the same first n_max as sorting all m: the tie run at the boundary is kept whole
    (all m are kept if it might continue past the margin)."""
    buf = work.view(np.float64)  # the n_max smallest so far, ascending
    cnt = 0
    for k in range(m):
        x = cd2[k]
        if cnt < n_max:
            b = cnt
            cnt += 1
        elif x < buf[n_max - 1]:
            b = n_max - 1
        else:
            continue
        while b > 0 and buf[b - 1] > x:
            buf[b] = buf[b - 1]
            b -= 1
        buf[b] = x
    limit = buf[n_max - 1] * (1.0 + 1e3 * TIE_RTOL)
    q = 0
    kept_max = 0.0
    out_min = np.inf
    for k in range(m):
        x = cd2[k]
        if x <= limit:
            kept_max = max(kept_max, x)
            if k != q:
                cd2[k], cd2[q] = cd2[q], x
                slot[k], slot[q] = slot[q], slot[k]
            q += 1
        else:
            out_min = min(out_min, x)
    if out_min - kept_max <= TIE_RTOL * out_min:  # a tie run might cross the margin
        return m
    return q
