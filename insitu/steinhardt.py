"""Steinhardt bond-orientational order (BOO) parameters, numba kernels.

q_l(i) = sqrt(4 pi / (2l+1) sum_m |q_lm(i)|^2),  q_lm(i) = 1/N_i sum_{j in NN(i)} Y_lm(r_ij)

Y_lm are evaluated with the stable three-term recurrence of the fully normalised
associated Legendre functions (Condon-Shortley phase), m >= 0 only, using
q_{l,-m} = (-1)^m conj(q_lm).  Conventions follow LAMMPS ``compute orientorder/atom``
(with ``nnn 12`` the neighbours are the 12 nearest).

Neighbour selection (all select a prefix of the distance-sorted neighbour list, ties
broken by global id):

* ``n_neighbors=N`` (default 12), ``cutoff=None``: the N nearest;
* ``cutoff=rc``: those of the N nearest within rc (``n_neighbors=None``: all within rc);
* ``adaptive_factor=P`` (LESS eq. 2): r_cut(i) = P x mean distance of the N nearest,
  neighbours = all atoms within r_cut(i).

``cross_species=True`` appends the LESS cross-species half: the same parameters over the
selected neighbours whose type differs from the centre's (zeros when there are none).
``wl=True`` adds the normalised third-order invariants w^_l (LAMMPS ``wl/hat``);
``averaged=True`` gives the Lechner-Dellago averages q-bar_l (and w-bar_l): q_lm averaged
over the atom and its selected neighbours.

Feature layout per atom: [q_l for l in ls] (+ [w^_l for l in ls] if wl); with
cross_species the same block again for the cross-species neighbours.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numba import njit

from .descriptors import Descriptor

__all__ = ["Steinhardt", "wigner3j"]

_FOUR_PI = 4.0 * math.pi


# ---------------------------------------------------------------------------------------
# coefficients
def _legendre_coefs(lmax: int):
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


_W3J_CACHE: dict = {}


def _w3j_table(l: int):
    """(m1, m2, m3, w) for all m1 + m2 + m3 = 0 of (l l l; m1 m2 m3)."""
    if l not in _W3J_CACHE:
        rows = []
        for m1 in range(-l, l + 1):
            for m2 in range(-l, l + 1):
                m3 = -m1 - m2
                if abs(m3) <= l:
                    w = wigner3j(l, l, l, m1, m2, m3)
                    if w != 0.0:
                        rows.append((m1, m2, m3, w))
        arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
        _W3J_CACHE[l] = (arr[:, :3].astype(np.int64), arr[:, 3].copy())
    return _W3J_CACHE[l]


# ---------------------------------------------------------------------------------------
# kernels
@njit(cache=True, error_model="numpy")
def _select(offsets, dists, n_nb, cutoff, adaptive, radius):
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
def _qlm_kernel(offsets, nbr, vectors, dists, nsel, center_types, types, ls, lmax,
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
                # l = m
                p2 = 0.0
                p1 = pmm
                o = lpos[m]
                if o >= 0:
                    are[o + m] += p1 * er
                    aim[o + m] += p1 * ei
                    if is_x:
                        bre[o + m] += p1 * er
                        bim[o + m] += p1 * ei
                if m < lmax:
                    p2 = p1
                    p1 = csub[m] * uz * pmm
                    o = lpos[m + 1]
                    if o >= 0:
                        are[o + m] += p1 * er
                        aim[o + m] += p1 * ei
                        if is_x:
                            bre[o + m] += p1 * er
                            bim[o + m] += p1 * ei
                for l in range(m + 2, lmax + 1):
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
def _ql_kernel(qre, qim, ls, out, col0):
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
def _average_kernel(offsets, nsel, self_row, qre, qim, entry_row, out_re, out_im):
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


# ---------------------------------------------------------------------------------------
class Steinhardt(Descriptor):
    """Steinhardt / LESS bond-orientational-order features.

    Parameters
    ----------
    ls : l values (default 3, 4, 6, 8, 10, 12).
    n_neighbors : N nearest neighbours (default 12); None = no limit (needs cutoff).
    cutoff : only neighbours within cutoff (Angstrom).
    cross_species : append the cross-species half (LESS 12-feature vector for 6 l's).
    adaptive_factor : P of LESS eq. 2 (r_cut(i) = P x mean distance of the N nearest).
    search_cutoff : search radius when no cutoff is given (N-nearest and adaptive rules);
        part of the descriptor's definition: a centre with fewer than n_neighbors within
        it uses those it has, in periodic frames and in situ alike.
    averaged : Lechner-Dellago averaged q-bar_l (w-bar_l).
    wl : also the normalised third-order invariants w^_l.
    """

    kind = "steinhardt"
    dtype = np.float64

    def __init__(self, ls=(3, 4, 6, 8, 10, 12), n_neighbors=12, cutoff=None,
                 cross_species=False, adaptive_factor=None, search_cutoff=5.0,
                 averaged=False, wl=False, chunk_size=8192):
        self.ls = tuple(int(v) for v in ls)
        if not self.ls or min(self.ls) < 0:
            raise ValueError(f"Steinhardt: ls must be non-negative integers, got {ls}")
        self.n_neighbors = None if n_neighbors is None else int(n_neighbors)
        self.cutoff = None if cutoff is None else float(cutoff)
        self.cross_species = bool(cross_species)
        self.adaptive_factor = None if adaptive_factor is None else float(adaptive_factor)
        self.search_cutoff = float(search_cutoff)
        self.averaged = bool(averaged)
        self.wl = bool(wl)
        self.chunk_size = int(chunk_size)
        if self.n_neighbors is not None and self.n_neighbors < 1:
            raise ValueError(f"Steinhardt: n_neighbors must be >= 1, got {n_neighbors}")
        if self.cutoff is not None and not self.cutoff > 0:
            raise ValueError(f"Steinhardt: cutoff must be positive, got {cutoff}")
        if self.adaptive_factor is not None:
            if self.cutoff is not None:
                raise ValueError("Steinhardt: give either cutoff or adaptive_factor, not both")
            if self.n_neighbors is None:
                raise ValueError("Steinhardt: adaptive_factor needs n_neighbors (the N of "
                                 "LESS eq. 2)")
            if not self.adaptive_factor > 0:
                raise ValueError("Steinhardt: adaptive_factor must be positive")
        if self.cutoff is None and self.n_neighbors is None:
            raise ValueError("Steinhardt: give n_neighbors, cutoff or both")
        if not self.search_cutoff > 0:
            raise ValueError("Steinhardt: search_cutoff must be positive")
        self._lmax = max(self.ls)
        self._coefs = _legendre_coefs(self._lmax)
        self._ls_arr = np.array(self.ls, np.int64)
        self._nlm = int(sum(l + 1 for l in self.ls))

    # -- properties ------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return len(self.ls) * (2 if self.wl else 1) * (2 if self.cross_species else 1)

    @property
    def feature_shape(self) -> tuple:
        return (self.n_features,)

    @property
    def feature_names(self) -> list:
        pre = "qbar" if self.averaged else "q"
        wpre = "wbar" if self.averaged else "w"
        block = [f"{pre}{l}" for l in self.ls]
        if self.wl:
            block += [f"{wpre}{l}" for l in self.ls]
        if self.cross_species:
            block = block + [f"{b}_cross" for b in block]
        return block

    def _base_radius(self) -> float:
        return self.cutoff if self.cutoff is not None else self.search_cutoff

    @property
    def required_cutoff(self) -> float:
        r = self._base_radius()
        return 2.0 * r if self.averaged else r

    def _search_radius(self) -> float:
        return self._base_radius()

    def to_metadata(self) -> dict:
        return {"kind": self.kind, "ls": list(self.ls), "n_neighbors": self.n_neighbors,
                "cutoff": self.cutoff, "cross_species": self.cross_species,
                "adaptive_factor": self.adaptive_factor, "search_cutoff": self.search_cutoff,
                "averaged": self.averaged, "wl": self.wl}

    @classmethod
    def from_metadata(cls, d: dict) -> Steinhardt:
        if d.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"Steinhardt.from_metadata: kind is {d.get('kind')!r}")
        keys = ("ls", "n_neighbors", "cutoff", "cross_species", "adaptive_factor",
                "search_cutoff", "averaged", "wl", "chunk_size")
        return cls(**{k: d[k] for k in keys if k in d})

    # -- evaluation -------------------------------------------------------------------------
    def _prepare(self, cl, types, ids, open_mode):
        return {"cl": cl, "types": types, "open": open_mode}

    def _neighbors(self, ctx, centers):
        """Neighbour list of point indices `centers` and the selected prefix lengths.

        The rule is the same for periodic frames and for a rank's local + ghost atoms, so
        in-situ and offline results agree: neighbours are searched within the search
        radius only. A centre with fewer than n_neighbors there (a rare, very open
        liquid environment) uses those it has; an adaptive radius is clamped to it."""
        cl = ctx["cl"]
        nl = cl.query_points(centers)
        nsel, _ = _select(nl.offsets, nl.distances,
                          0 if self.n_neighbors is None else self.n_neighbors,
                          -1.0 if self.cutoff is None else self.cutoff,
                          -1.0 if self.adaptive_factor is None else self.adaptive_factor,
                          cl.cutoff)
        return nl, nsel

    def _qlm(self, ctx, nl, nsel, center_types):
        nc = nl.n_centers
        qre = np.zeros((nc, self._nlm))
        qim = np.zeros((nc, self._nlm))
        if self.cross_species:
            xre = np.zeros((nc, self._nlm))
            xim = np.zeros((nc, self._nlm))
        else:
            xre = xim = np.zeros((1, 1))
        cnt = np.zeros(nc, np.int64)
        xcnt = np.zeros(nc, np.int64)
        a, b, diag, sub = self._coefs
        _qlm_kernel(nl.offsets, nl.index, nl.vectors, nl.distances, nsel, center_types,
                    ctx["types"], self._ls_arr, self._lmax, a, b, diag, sub,
                    self.cross_species, qre, qim, xre, xim, cnt, xcnt)
        return qre, qim, xre, xim

    def _invariants(self, qre, qim) -> np.ndarray:
        """[q_l] (+ [w^_l]) from q_lm (m >= 0 columns, per l)."""
        nc = qre.shape[0]
        out = np.zeros((nc, len(self.ls) * (2 if self.wl else 1)))
        _ql_kernel(qre, qim, self._ls_arr, out, 0)
        if self.wl:
            o = 0
            for il, l in enumerate(self.ls):
                re = qre[:, o:o + l + 1]
                im = qim[:, o:o + l + 1]
                s = re[:, 0] ** 2 + im[:, 0] ** 2 + 2.0 * (re[:, 1:] ** 2 + im[:, 1:] ** 2).sum(1)
                out[:, len(self.ls) + il] = self._wl(l, re, im, s)
                o += l + 1
        return out

    @staticmethod
    def _wl(l, re, im, s):
        q = re + 1j * im
        # full m = -l..l, column m + l
        sign = np.where(np.arange(1, l + 1) % 2 == 1, -1.0, 1.0)
        neg = (np.conj(q[:, 1:]) * sign)[:, ::-1]
        full = np.concatenate([neg, q], axis=1)
        mm, w = _w3j_table(l)
        acc = np.zeros(len(re), dtype=np.complex128)
        for (m1, m2, m3), wv in zip(mm, w):
            acc += wv * full[:, m1 + l] * full[:, m2 + l] * full[:, m3 + l]
        with np.errstate(invalid="ignore", divide="ignore"):
            val = np.where(s > 0, acc.real / np.maximum(s, 1e-300) ** 1.5, 0.0)
        return val

    def _chunk(self, ctx, start, stop, out=None):
        centers = np.arange(start, stop, dtype=np.int64)
        types = ctx["types"]
        nl, nsel = self._neighbors(ctx, centers)
        qre, qim, xre, xim = self._qlm(ctx, nl, nsel, types[start:stop])
        if self.averaged:
            # q_lm of the selected neighbours (points in open mode, atoms in periodic mode)
            sel_mask = np.arange(len(nl.index)) - np.repeat(nl.offsets[:-1], np.diff(
                nl.offsets)) < np.repeat(nsel, np.diff(nl.offsets))
            need = np.unique(nl.index[sel_mask])
            nl2, nsel2 = self._neighbors(ctx, need)
            q2 = self._qlm(ctx, nl2, nsel2, types[need])
            # rows 0..nc-1: centres; rows nc..: needed points (need is sorted)
            nc = stop - start
            pos = np.minimum(np.searchsorted(need, nl.index), max(len(need) - 1, 0))
            entry_row = nc + pos
            self_row = np.arange(nc, dtype=np.int64)
            blocks = [(qre, qim, q2[0], q2[1])]
            if self.cross_species:
                blocks.append((xre, xim, q2[2], q2[3]))
            results = []
            for are, aim, bre, bim in blocks:
                allre = np.concatenate([are, bre])
                allim = np.concatenate([aim, bim])
                ore = np.zeros_like(are)
                oim = np.zeros_like(aim)
                _average_kernel(nl.offsets, nsel, self_row, allre, allim, entry_row, ore,
                                oim)
                results.append((ore, oim))
            qre, qim = results[0]
            if self.cross_species:
                xre, xim = results[1]
        feats = self._invariants(qre, qim)
        if self.cross_species:
            feats = np.concatenate([feats, self._invariants(xre, xim)], axis=1)
        if out is not None:
            out[...] = feats
            return out
        return feats
