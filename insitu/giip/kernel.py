"""Numba kernels of the GIIP inner product and orientation-minimised distance.

With every Gaussian normalised to unit L2 norm (Hardin et al., Eq. 3; in d dimensions the
prefactor is pi^(-d/4) sigma^(-d/2)) and one sigma for all atoms, the overlap integral of two
atoms' Gaussians is exp(-|x_a - x_b|^2 / (4 sigma^2)) in any dimension, so the GIIP of two
LAEs is (Eq. 13)

    <X_a, X_b> = sum_i sum_j [c_i == c_j] w_i w_j exp(-|a_i - b_j|^2 / (4 sigma^2)),

where w are the weights of Eq. 11 and c the species channel (all atoms in channel 0 for the
sign-species convention, one channel per species for vector-species: the sum over channels
is taken inside the orientation search, as the paper requires). The distance is Eq. 9,
d^2 = <a,a> + <b,b> - 2 <a,Rb>, minimised over R (Eq. 10) by maximising <a,Rb>:

1. a coarse grid of proper rotations applied to b and to its mirror image (O(d));
2. from the ``n_starts`` best grid points, a local refinement: each step maximises the
   linearisation of <a,Rb> at the current R, sum w_i w_j K_ij a_i . R b_j, exactly (Horn's
   quaternion solution of the weighted Kabsch problem in 3D, atan2 in 2D). For positive
   weights this is a minorise-maximise step (exp is convex), so <a,Rb> never decreases; a
   step that would decrease it ends the refinement. It converges to the continuous local
   optimum (finer than the paper's 1 degree grid).

Layout: LAEs are padded arrays pos (n, m, d), weights (n, m), channels (n, m), counts (n,).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["self_overlaps", "cross_block", "best_overlap"]


@njit(cache=True, fastmath=True, inline="always")
def _gauss(pa, i, rb, j, inv4s2):
    """exp(-|a_i - b_j|^2 / (4 sigma^2)): the overlap of two unit-norm Gaussians."""
    d2 = 0.0
    for k in range(pa.shape[1]):
        t = pa[i, k] - rb[j, k]
        d2 += t * t
    return np.exp(-d2 * inv4s2)


@njit(cache=True, fastmath=True)
def _overlap(pa, wa, ca, na, rb, wb, cb, nb, inv4s2):
    """<a, b> of Eq. 13 for b already rotated (``rb``)."""
    s = 0.0
    for i in range(na):
        for j in range(nb):
            if ca[i] == cb[j]:
                s += wa[i] * wb[j] * _gauss(pa, i, rb, j, inv4s2)
    return s


@njit(cache=True)
def self_overlaps(pos, w, c, counts, inv4s2):
    """<X, X> (Eq. 13) of every LAE of a padded set."""
    out = np.empty(len(counts))
    for i in range(len(counts)):
        out[i] = _overlap(pos[i], w[i], c[i], counts[i], pos[i], w[i], c[i], counts[i],
                          inv4s2)
    return out


@njit(cache=True, fastmath=True)
def _rotate(rot, pb, nb, rb):
    dim = pb.shape[1]
    for j in range(nb):
        for k in range(dim):
            acc = 0.0
            for m in range(dim):
                acc += rot[k, m] * pb[j, m]
            rb[j, k] = acc


@njit(cache=True, fastmath=True)
def _overlap_and_moment(pa, wa, ca, na, pb, rb, wb, cb, nb, inv4s2, bmat):
    """<a, Rb> and B = sum_ij w_i w_j K_ij b_j a_i^T (b unrotated), for the Kabsch step."""
    dim = pa.shape[1]
    bmat[:, :] = 0.0
    s = 0.0
    for i in range(na):
        for j in range(nb):
            if ca[i] != cb[j]:
                continue
            t = wa[i] * wb[j] * _gauss(pa, i, rb, j, inv4s2)
            s += t
            for k in range(dim):
                for m in range(dim):
                    bmat[k, m] += t * pb[j, k] * pa[i, m]
    return s


@njit(cache=True)
def _max_eigvec4(a, v):
    """Eigenvector of the largest eigenvalue of a symmetric 4x4 matrix (cyclic Jacobi;
    ``a`` is overwritten, the eigenvectors are the columns of ``v``)."""
    for i in range(4):
        for j in range(4):
            v[i, j] = 1.0 if i == j else 0.0
    for _ in range(60):
        off = 0.0
        scale = 0.0
        for i in range(4):
            scale += a[i, i] * a[i, i]
            for j in range(i + 1, 4):
                off += a[i, j] * a[i, j]
        if off <= 1e-30 * (scale + 1e-300):
            break
        for p in range(3):
            for q in range(p + 1, 4):
                if a[p, q] == 0.0:
                    continue
                theta = (a[q, q] - a[p, p]) / (2.0 * a[p, q])
                t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + np.sqrt(theta * theta + 1.0))
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(4):
                    akp, akq = a[k, p], a[k, q]
                    a[k, p] = c * akp - s * akq
                    a[k, q] = s * akp + c * akq
                for k in range(4):
                    apk, aqk = a[p, k], a[q, k]
                    a[p, k] = c * apk - s * aqk
                    a[q, k] = s * apk + c * aqk
                for k in range(4):
                    vkp, vkq = v[k, p], v[k, q]
                    v[k, p] = c * vkp - s * vkq
                    v[k, q] = s * vkp + c * vkq
    best = 0
    for i in range(1, 4):
        if a[i, i] > a[best, best]:
            best = i
    return best


@njit(cache=True)
def _kabsch(bmat, out):
    """The proper rotation R maximising tr(R B), B = sum b a^T: atan2 in 2D; in 3D Horn's
    quaternion method (largest eigenvector of a symmetric 4x4 matrix, no LAPACK)."""
    dim = bmat.shape[0]
    if dim == 2:
        theta = np.arctan2(bmat[0, 1] - bmat[1, 0], bmat[0, 0] + bmat[1, 1])
        out[0, 0] = np.cos(theta)
        out[0, 1] = -np.sin(theta)
        out[1, 0] = np.sin(theta)
        out[1, 1] = np.cos(theta)
        return
    s = bmat
    n = np.empty((4, 4))
    n[0, 0] = s[0, 0] + s[1, 1] + s[2, 2]
    n[1, 1] = s[0, 0] - s[1, 1] - s[2, 2]
    n[2, 2] = -s[0, 0] + s[1, 1] - s[2, 2]
    n[3, 3] = -s[0, 0] - s[1, 1] + s[2, 2]
    n[0, 1] = n[1, 0] = s[1, 2] - s[2, 1]
    n[0, 2] = n[2, 0] = s[2, 0] - s[0, 2]
    n[0, 3] = n[3, 0] = s[0, 1] - s[1, 0]
    n[1, 2] = n[2, 1] = s[0, 1] + s[1, 0]
    n[1, 3] = n[3, 1] = s[2, 0] + s[0, 2]
    n[2, 3] = n[3, 2] = s[1, 2] + s[2, 1]
    v = np.empty((4, 4))
    k = _max_eigvec4(n, v)
    w, x, y, z = v[0, k], v[1, k], v[2, k], v[3, k]
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    out[0, 0] = 1 - 2 * (y * y + z * z)
    out[0, 1] = 2 * (x * y - w * z)
    out[0, 2] = 2 * (x * z + w * y)
    out[1, 0] = 2 * (x * y + w * z)
    out[1, 1] = 1 - 2 * (x * x + z * z)
    out[1, 2] = 2 * (y * z - w * x)
    out[2, 0] = 2 * (x * z - w * y)
    out[2, 1] = 2 * (y * z + w * x)
    out[2, 2] = 1 - 2 * (x * x + y * y)


@njit(cache=True)
def best_overlap(pa, wa, ca, na, pb, wb, cb, nb, grid, improper, n_starts, inv4s2,
                 max_iter):
    """max over R in O(d) (SO(d) if not ``improper``) of <a, R b> (Eq. 10 via Eq. 13)."""
    if na == 0 or nb == 0:
        return 0.0
    dim = pa.shape[1]
    n_rot = grid.shape[0]
    n_mirror = 2 if improper else 1
    mirrored = np.empty((n_mirror, nb, dim))
    for m in range(n_mirror):
        for j in range(nb):
            for k in range(dim):
                mirrored[m, j, k] = pb[j, k]
            if m == 1:
                mirrored[m, j, 0] = -pb[j, 0]
    rb = np.empty((nb, dim))
    top_s = np.full(n_starts, -np.inf)
    top_m = np.full(n_starts, -1)
    top_g = np.full(n_starts, -1)
    for m in range(n_mirror):
        for g in range(n_rot):
            _rotate(grid[g], mirrored[m], nb, rb)
            s = _overlap(pa, wa, ca, na, rb, wb, cb, nb, inv4s2)
            if s > top_s[n_starts - 1]:
                k = n_starts - 1
                while k > 0 and top_s[k - 1] < s:
                    top_s[k] = top_s[k - 1]
                    top_m[k] = top_m[k - 1]
                    top_g[k] = top_g[k - 1]
                    k -= 1
                top_s[k] = s
                top_m[k] = m
                top_g[k] = g
    best = top_s[0]
    rot = np.empty((dim, dim))
    trial = np.empty((dim, dim))
    bmat = np.empty((dim, dim))
    bnew = np.empty((dim, dim))
    for t in range(n_starts):
        if top_g[t] < 0:
            break
        m = top_m[t]
        rot[:, :] = grid[top_g[t]]
        _rotate(rot, mirrored[m], nb, rb)
        s = _overlap_and_moment(pa, wa, ca, na, mirrored[m], rb, wb, cb, nb, inv4s2, bmat)
        for _ in range(max_iter):
            _kabsch(bmat, trial)
            _rotate(trial, mirrored[m], nb, rb)
            s_new = _overlap_and_moment(pa, wa, ca, na, mirrored[m], rb, wb, cb, nb, inv4s2,
                                        bnew)
            if not s_new > s + 1e-13 * (abs(s) + 1.0):
                break
            s = s_new
            rot[:, :] = trial
            bmat[:, :] = bnew
        if s > best:
            best = s
    return best


@njit(cache=True)
def cross_block(pos_a, w_a, c_a, n_a, self_a, pos_b, w_b, c_b, n_b, self_b, grid, improper,
                n_starts, inv4s2, max_iter, row_offset, out):
    """out[i, j] = orientation-minimised GIIP distance (Eqs. 9-10) between LAE i of set a
    and LAE j of set b. With ``row_offset`` >= 0 (set a is rows row_offset... of set b, a
    block of a symmetric matrix) only j > i + row_offset is computed, the rest is left 0."""
    for i in range(len(n_a)):
        j0 = i + row_offset + 1 if row_offset >= 0 else 0
        for j in range(j0, len(n_b)):
            s = best_overlap(pos_a[i], w_a[i], c_a[i], n_a[i], pos_b[j], w_b[j], c_b[j],
                             n_b[j], grid, improper, n_starts, inv4s2, max_iter)
            d2 = self_a[i] + self_b[j] - 2.0 * s
            out[i, j] = np.sqrt(d2) if d2 > 0.0 else 0.0
