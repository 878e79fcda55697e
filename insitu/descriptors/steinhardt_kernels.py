"""numba kernels of the Steinhardt / LESS descriptor (see :mod:`.steinhardt`): neighbour
selection (N nearest, cutoff, LESS eq. 2 adaptive radius), q_lm accumulation with the
Legendre recurrence, q_l from q_lm, the third-order invariants w^_l and the
Lechner-Dellago neighbour average."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["select_neighbors", "qlm_kernel", "nearest_distance_kernel", "invariants_kernel",
           "INVARIANT_BLOCK"]


@njit(cache=True, error_model="numpy")
def select_neighbors(offsets, dists, n_nb, cutoff, adaptive, radius):
    """Prefix length of the selected neighbours of each centre and a status code.

    n_nb: N (0 = no limit); cutoff: <= 0 means none; adaptive: P (<= 0: off);
    radius: the search radius of the neighbour list.
    status: 0 ok, 1 fewer than N neighbours within the search radius (the centre uses
    those it has), 2 adaptive radius larger than the search radius (clamped to it).
    """
    nc = offsets.shape[0] - 1
    nsel = np.zeros(nc, np.int64)
    status = np.zeros(nc, np.int64)
    for c in range(nc):
        s0 = offsets[c]
        m = offsets[c + 1] - s0
        if adaptive > 0.0:
            n_mean = min(n_nb, m)
            if n_mean < n_nb:
                status[c] = 1
            if n_mean == 0:
                continue
            acc = 0.0
            for k in range(n_mean):
                acc += dists[s0 + k]
            rc = adaptive * acc / n_mean
            if rc > radius:
                status[c] = 2
                rc = radius
            k = 0
            while k < m and dists[s0 + k] <= rc:
                k += 1
            nsel[c] = k
        elif cutoff > 0.0:
            k = 0
            while k < m and dists[s0 + k] <= cutoff and (n_nb <= 0 or k < n_nb):
                k += 1
            nsel[c] = k
        else:
            if m < n_nb:
                status[c] = 1
            nsel[c] = min(n_nb, m)
    return nsel, status


@njit(cache=True, error_model="numpy", fastmath=True)
def qlm_kernel(offsets, nbr, vectors, dists, nsel, center_types, types, ls, lmax,
               ca, cb, cdiag, csub, cross, rows, qre, qim, xre, xim):
    """Accumulate q_lm (m >= 0, all l in ls) of each centre; normalised by the count.

    Written to row rows[c] of qre/qim (., nlm) and, if cross, of xre/xim for the
    neighbours of another type than the centre.  Per neighbour, for each m the
    normalised associated Legendre functions (divided by sin^m theta) are run up in l
    with the three-term recurrence and multiplied by (sin theta e^{i phi})^m =
    (u_x + i u_y)^m; only the requested l are accumulated.  Four neighbours go through
    the recurrence together in scalar locals (a missing fourth has weight 0): their
    independent chains run in parallel and LLVM packs them into SIMD registers (2x
    faster than one neighbour at a time; written out lane by lane because small helper
    functions returning tuples defeat the packing).
    """
    nc = offsets.shape[0] - 1
    lpos = np.full(lmax + 1, -1, np.int64)
    o = 0
    for il in range(ls.shape[0]):
        lpos[ls[il]] = o
        o += ls[il] + 1
    nlm = o
    are = np.zeros(nlm)
    aim = np.zeros(nlm)
    bre = np.zeros(nlm)
    bim = np.zeros(nlm)
    lane = np.zeros((4, 5))  # per neighbour of the group: u_x, u_y, u_z, weight, cross
    for c in range(nc):
        s0 = offsets[c]
        n = nsel[c]
        nx = 0
        for j in range(nlm):
            are[j] = 0.0
            aim[j] = 0.0
            bre[j] = 0.0
            bim[j] = 0.0
        for k0 in range(0, n, 4):
            for q in range(4):
                k = k0 + q
                lane[q, 0] = 0.0
                lane[q, 1] = 0.0
                lane[q, 2] = 1.0
                lane[q, 3] = 0.0
                lane[q, 4] = 0.0
                if k < n:
                    d = dists[s0 + k]
                    if d > 0.0:  # else +z: a coincident atom (flagged by the caller)
                        lane[q, 0] = vectors[s0 + k, 0] / d
                        lane[q, 1] = vectors[s0 + k, 1] / d
                        lane[q, 2] = vectors[s0 + k, 2] / d
                    lane[q, 3] = 1.0
                    if cross and types[nbr[s0 + k]] != center_types[c]:
                        lane[q, 4] = 1.0
                        nx += 1
            ux0, uy0, uz0, er0, w0 = lane[0, 0], lane[0, 1], lane[0, 2], lane[0, 3], lane[0, 4]
            ux1, uy1, uz1, er1, w1 = lane[1, 0], lane[1, 1], lane[1, 2], lane[1, 3], lane[1, 4]
            ux2, uy2, uz2, er2, w2 = lane[2, 0], lane[2, 1], lane[2, 2], lane[2, 3], lane[2, 4]
            ux3, uy3, uz3, er3, w3 = lane[3, 0], lane[3, 1], lane[3, 2], lane[3, 3], lane[3, 4]
            ei0 = 0.0
            ei1 = 0.0
            ei2 = 0.0
            ei3 = 0.0
            pmm = cdiag[0]  # the same for all neighbours: P_m^m / sin^m is a constant
            for m in range(lmax + 1):
                if m > 0:
                    pmm = pmm * cdiag[m]
                    t = er0 * ux0 - ei0 * uy0
                    ei0 = er0 * uy0 + ei0 * ux0
                    er0 = t
                    t = er1 * ux1 - ei1 * uy1
                    ei1 = er1 * uy1 + ei1 * ux1
                    er1 = t
                    t = er2 * ux2 - ei2 * uy2
                    ei2 = er2 * uy2 + ei2 * ux2
                    er2 = t
                    t = er3 * ux3 - ei3 * uy3
                    ei3 = er3 * uy3 + ei3 * ux3
                    er3 = t
                p0 = pmm  # P_l^m for l = m
                p1 = pmm
                p2 = pmm
                p3 = pmm
                r0 = 0.0  # P_{l-1}^m
                r1 = 0.0
                r2 = 0.0
                r3 = 0.0
                for l in range(m, lmax + 1):
                    if l == m + 1:
                        f = csub[m]
                        p0, r0 = f * uz0 * pmm, p0
                        p1, r1 = f * uz1 * pmm, p1
                        p2, r2 = f * uz2 * pmm, p2
                        p3, r3 = f * uz3 * pmm, p3
                    elif l > m + 1:
                        a = ca[l, m]
                        b = cb[l, m]
                        p0, r0 = a * (uz0 * p0 - b * r0), p0
                        p1, r1 = a * (uz1 * p1 - b * r1), p1
                        p2, r2 = a * (uz2 * p2 - b * r2), p2
                        p3, r3 = a * (uz3 * p3 - b * r3), p3
                    j = lpos[l]
                    if j >= 0:
                        j += m
                        are[j] += p0 * er0 + p1 * er1 + p2 * er2 + p3 * er3
                        aim[j] += p0 * ei0 + p1 * ei1 + p2 * ei2 + p3 * ei3
                        if cross:
                            bre[j] += p0 * er0 * w0 + p1 * er1 * w1 + p2 * er2 * w2 + p3 * er3 * w3
                            bim[j] += p0 * ei0 * w0 + p1 * ei1 * w1 + p2 * ei2 * w2 + p3 * ei3 * w3
        f = 1.0 / n if n > 0 else 0.0
        r = rows[c]
        for j in range(nlm):
            qre[r, j] = are[j] * f
            qim[r, j] = aim[j] * f
        if cross:
            f = 1.0 / nx if nx > 0 else 0.0
            for j in range(nlm):
                xre[r, j] = bre[j] * f
                xim[r, j] = bim[j] * f


@njit(cache=True, error_model="numpy")
def nearest_distance_kernel(offsets, dists, rows, qre, qim, col):
    """Per centre c, into ``qre[rows[c], col]`` and ``[col + 1]`` (0 into ``qim``): the
    distance r1 of its nearest neighbour and r1^2 (0 without neighbours), the moments
    whose neighbourhood means give the spread of r1 (:func:`invariants_kernel`)."""
    for c in range(offsets.shape[0] - 1):
        r = rows[c]
        r1 = dists[offsets[c]] if offsets[c + 1] > offsets[c] else 0.0
        qre[r, col] = r1
        qre[r, col + 1] = r1 * r1
        qim[r, col] = 0.0
        qim[r, col + 1] = 0.0


INVARIANT_BLOCK = 64
"""Centres per block of :func:`invariants_kernel`: their q_lm, transposed (lm, centre),
stay in the L1/L2 cache while every invariant of the block is summed."""


@njit(cache=True, error_model="numpy")
def invariants_kernel(qre, qim, centre_rows, offsets, entry_rows, ls, q_offsets, tri_start,
                      tri_cols, tri_re, tri_im, tri_c, wl, out, col0):
    """Per centre c: the q_lm it is described by -- the Lechner-Dellago mean of rows
    ``centre_rows[c]`` and ``entry_rows[offsets[c]:offsets[c + 1]]`` of qre/qim (its
    selected neighbours; none: its own q_lm) -- then into ``out[c, col0 + k]``
    q_l = sqrt(4 pi / (2l+1) (|q_l0|^2 + 2 sum_{m>0} |q_lm|^2)) for l = ls[k] and, if
    ``wl``, into ``out[c, col0 + len(ls) + k]`` w^_l (Steinhardt et al. 1983, Eq. 1.4;
    LAMMPS ``wl/hat``): the sum over m1 + m2 + m3 = 0 of (l l l; m1 m2 m3) q_lm1 q_lm2
    q_lm3 over (sum_m |q_lm|^2)^(3/2), one term per row of :func:`wl_triples` (a class of
    column permutations and m -> -m mirrors, multiplicity in ``tri_c``; row ``tri_cols``
    of q and the signs ``tri_re``, ``tri_im`` of its parts, q_l,-m = (-1)^m conj q_lm).
    Two columns of qre after the q_lm, r1 and r1^2 (:func:`nearest_distance_kernel`), are
    averaged the same way and give, after the invariants, the relative spread of the
    nearest-neighbour distance over the centre and its neighbours, sqrt(<r1^2> - <r1>^2) /
    <r1>.

    Centres go in blocks of INVARIANT_BLOCK with the block's q_lm transposed, so every
    sum runs over the block's centres in SIMD lanes; each centre's arithmetic is that of
    a centre on its own (same operations, same order)."""
    nc = offsets.shape[0] - 1
    nlm = qre.shape[1]
    tre = np.zeros((nlm, INVARIANT_BLOCK))
    tim = np.zeros((nlm, INVARIANT_BLOCK))
    row_re = np.empty(nlm)
    row_im = np.empty(nlm)
    acc = np.empty(INVARIANT_BLOCK)
    norm = np.empty(INVARIANT_BLOCK)
    nl = ls.shape[0]
    n_q = q_offsets[nl - 1] + ls[nl - 1] + 1  # q_lm columns; r1, r1^2 after them
    spread_col = col0 + nl * (2 if wl else 1)
    for b0 in range(0, nc, INVARIANT_BLOCK):
        nb = min(INVARIANT_BLOCK, nc - b0)
        for b in range(nb):  # the mean in a contiguous row, then into the block's column
            c = b0 + b
            r = centre_rows[c]
            for j in range(nlm):
                row_re[j] = qre[r, j]
                row_im[j] = qim[r, j]
            n = offsets[c + 1] - offsets[c]
            if n > 0:
                for e in range(offsets[c], offsets[c + 1]):
                    r = entry_rows[e]
                    for j in range(nlm):
                        row_re[j] += qre[r, j]
                        row_im[j] += qim[r, j]
                f = 1.0 / (n + 1)
                for j in range(nlm):
                    row_re[j] *= f
                    row_im[j] *= f
            for j in range(nlm):
                tre[j, b] = row_re[j]
                tim[j, b] = row_im[j]
            if nlm == n_q + 2:
                mean = row_re[n_q]
                var = max(row_re[n_q + 1] - mean * mean, 0.0)
                out[c, spread_col] = np.sqrt(var) / mean if mean > 0.0 else 0.0
        for k in range(nl):
            l = ls[k]
            o = q_offsets[k]
            for b in range(INVARIANT_BLOCK):
                acc[b] = 0.0
            for m in range(1, l + 1):
                for b in range(INVARIANT_BLOCK):
                    acc[b] += tre[o + m, b] * tre[o + m, b] + tim[o + m, b] * tim[o + m, b]
            for b in range(nb):
                s = tre[o, b] * tre[o, b] + tim[o, b] * tim[o, b]
                out[b0 + b, col0 + k] = np.sqrt(4.0 * np.pi / (2 * l + 1) * (s + 2.0 * acc[b]))
            if not wl:
                continue
            for b in range(INVARIANT_BLOCK):
                norm[b] = tre[o, b] * tre[o, b] + tim[o, b] * tim[o, b]
            for m in range(1, l + 1):
                for b in range(INVARIANT_BLOCK):
                    norm[b] += 2.0 * (tre[o + m, b] * tre[o + m, b]
                                      + tim[o + m, b] * tim[o + m, b])
            for b in range(INVARIANT_BLOCK):
                acc[b] = 0.0
            for t in range(tri_start[k], tri_start[k + 1]):
                ja, jb, jc = tri_cols[t, 0], tri_cols[t, 1], tri_cols[t, 2]
                ra, rb, rc = tri_re[t, 0], tri_re[t, 1], tri_re[t, 2]
                ia, ib, ic = tri_im[t, 0], tri_im[t, 1], tri_im[t, 2]
                weight = tri_c[t]
                for b in range(INVARIANT_BLOCK):
                    ar = ra * tre[ja, b]
                    ai = ia * tim[ja, b]
                    br = rb * tre[jb, b]
                    bi = ib * tim[jb, b]
                    cr = rc * tre[jc, b]
                    ci = ic * tim[jc, b]
                    abr = ar * br - ai * bi
                    abi = ar * bi + ai * br
                    acc[b] += weight * (abr * cr - abi * ci)
            for b in range(nb):
                s = norm[b]
                out[b0 + b, col0 + nl + k] = acc[b] / s ** 1.5 if s > 0.0 else 0.0
