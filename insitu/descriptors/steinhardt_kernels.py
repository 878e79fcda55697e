"""numba kernels of the Steinhardt / LESS descriptor (see :mod:`.steinhardt`): neighbour
selection (N nearest, cutoff, LESS eq. 2 adaptive radius), q_lm accumulation with the
Legendre recurrence, q_l from q_lm, and the Lechner-Dellago neighbour average."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["select_neighbors", "qlm_kernel", "ql_kernel", "average_kernel"]


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


@njit(cache=True, error_model="numpy")
def qlm_kernel(offsets, nbr, vectors, dists, nsel, center_types, types, ls, lmax,
                ca, cb, cdiag, csub, cross, qre, qim, xre, xim, cnt, xcnt):
    """Accumulate q_lm (m >= 0, all l in ls) of each centre; normalised by the count.

    qre/qim (nc, nlm) and, if cross, xre/xim for neighbours of another type than the
    centre.  cnt/xcnt receive the neighbour counts.  Per neighbour, for each m the
    normalised associated Legendre functions (divided by sin^m theta) are run up in l
    with the three-term recurrence and multiplied by (sin theta e^{i phi})^m =
    (u_x + i u_y)^m; only the requested l are accumulated.
    """
    nc = offsets.shape[0] - 1
    nl = ls.shape[0]
    lpos = np.full(lmax + 1, -1, np.int64)
    o = 0
    for il in range(nl):
        lpos[ls[il]] = o
        o += ls[il] + 1
    nlm = o
    are = np.zeros(nlm)
    aim = np.zeros(nlm)
    bre = np.zeros(nlm)
    bim = np.zeros(nlm)
    for c in range(nc):
        s0 = offsets[c]
        n = nsel[c]
        tc = center_types[c]
        nx = 0
        for j in range(nlm):
            are[j] = 0.0
            aim[j] = 0.0
            bre[j] = 0.0
            bim[j] = 0.0
        for k in range(n):
            d = dists[s0 + k]
            if d > 0.0:
                inv = 1.0 / d
                ux = vectors[s0 + k, 0] * inv
                uy = vectors[s0 + k, 1] * inv
                uz = vectors[s0 + k, 2] * inv
            else:
                ux = 0.0
                uy = 0.0
                uz = 1.0
            is_x = cross and types[nbr[s0 + k]] != tc
            if is_x:
                nx += 1
            er = 1.0
            ei = 0.0
            pmm = cdiag[0]
            for m in range(lmax + 1):
                if m > 0:
                    pmm = cdiag[m] * pmm
                    t = er * ux - ei * uy
                    ei = er * uy + ei * ux
                    er = t
                # normalised P_l^m / sin^m for l = m, m+1, ... by the three-term recurrence
                p1 = 0.0
                p2 = 0.0
                for l in range(m, lmax + 1):
                    if l == m:
                        p0 = pmm
                    elif l == m + 1:
                        p0 = csub[m] * uz * pmm
                    else:
                        p0 = ca[l, m] * (uz * p1 - cb[l, m] * p2)
                    p2 = p1
                    p1 = p0
                    o = lpos[l]
                    if o >= 0:
                        are[o + m] += p0 * er
                        aim[o + m] += p0 * ei
                        if is_x:
                            bre[o + m] += p0 * er
                            bim[o + m] += p0 * ei
        cnt[c] = n
        xcnt[c] = nx
        f = 1.0 / n if n > 0 else 0.0
        for j in range(nlm):
            qre[c, j] = are[j] * f
            qim[c, j] = aim[j] * f
        if cross:
            f = 1.0 / nx if nx > 0 else 0.0
            for j in range(nlm):
                xre[c, j] = bre[j] * f
                xim[c, j] = bim[j] * f


@njit(cache=True, error_model="numpy")
def ql_kernel(qre, qim, ls, out, col0):
    """out[:, col0 + il] = q_l = sqrt(4 pi / (2l+1) (|q_l0|^2 + 2 sum_{m>0} |q_lm|^2))."""
    nc = qre.shape[0]
    for c in range(nc):
        o = 0
        for il in range(ls.shape[0]):
            l = ls[il]
            s = qre[c, o] * qre[c, o] + qim[c, o] * qim[c, o]
            acc = 0.0
            for m in range(1, l + 1):
                acc += qre[c, o + m] * qre[c, o + m] + qim[c, o + m] * qim[c, o + m]
            out[c, col0 + il] = np.sqrt(4.0 * np.pi / (2 * l + 1) * (s + 2.0 * acc))
            o += l + 1


@njit(cache=True, error_model="numpy")
def average_kernel(offsets, nsel, self_row, qre, qim, entry_row, out_re, out_im):
    """Lechner-Dellago: out(c) = mean of q(k) over k in {c} U selected neighbours.

    self_row[c]: row of q for the centre itself; entry_row[e]: row of q of the neighbour
    in neighbour-list entry e (only the selected entries are read).
    """
    nc = offsets.shape[0] - 1
    w = qre.shape[1]
    for c in range(nc):
        s0 = offsets[c]
        n = nsel[c]
        r = self_row[c]
        for j in range(w):
            out_re[c, j] = qre[r, j]
            out_im[c, j] = qim[r, j]
        for k in range(n):
            r = entry_row[s0 + k]
            for j in range(w):
                out_re[c, j] += qre[r, j]
                out_im[c, j] += qim[r, j]
        f = 1.0 / (n + 1)
        for j in range(w):
            out_re[c, j] *= f
            out_im[c, j] *= f
