"""Neighbour search with a numba cell list.

Two modes share one kernel:

* :meth:`CellList.periodic` -- a periodic frame (orthogonal or triclinic cell, any cutoff,
  including cutoffs larger than half the box: the cell is padded with as many periodic
  images as the cutoff needs, so the same atom may appear several times as a neighbour).
  Directions with ``pbc`` False are open.
* :meth:`CellList.open` -- an open set of points (an MPI rank's local + ghost atoms): only
  the first ``n_centers`` points are centres, every point is a candidate neighbour and no
  wrapping is done.

The cell list is built once over all points (memory O(N)); :meth:`CellList.query` returns
the neighbours of a contiguous range of centres, so callers can loop over chunks and keep
memory bounded by the chunk.

Neighbours of each centre come sorted by distance.  Distances equal to within a relative
``1e-10`` (on the squared distance) count as ties; ties are broken by the global atom id of
the neighbour, then by the image / point index.  Results therefore do not depend on the
order of the atoms or on the MPI decomposition, also for perfect crystals where
floating-point noise would otherwise decide the order of equidistant neighbours.
"""

from __future__ import annotations

import itertools

import numpy as np
from numba import njit

from .neighbor_list import NeighborList
from .ordering import fix_ties, nearest_first, rank_order

__all__ = ["NeighborList", "CellList", "periodic_images"]


@njit(cache=True, error_model="numpy")
def _build_bins(pos, lo, inv_bin, nb):
    n = pos.shape[0]
    nbin = nb[0] * nb[1] * nb[2]
    counts = np.zeros(nbin + 1, np.int64)
    bin_of = np.empty(n, np.int64)
    for i in range(n):
        b0 = min(max(int(np.floor((pos[i, 0] - lo[0]) * inv_bin[0])), 0), nb[0] - 1)
        b1 = min(max(int(np.floor((pos[i, 1] - lo[1]) * inv_bin[1])), 0), nb[1] - 1)
        b2 = min(max(int(np.floor((pos[i, 2] - lo[2]) * inv_bin[2])), 0), nb[2] - 1)
        k = (b0 * nb[1] + b1) * nb[2] + b2
        bin_of[i] = k
        counts[k + 1] += 1
    for k in range(nbin):
        counts[k + 1] += counts[k]
    start = counts.copy()
    fill = counts[:-1].copy()
    order = np.empty(n, np.int64)
    for i in range(n):
        k = bin_of[i]
        order[fill[k]] = i
        fill[k] += 1
    return start, order


@njit(cache=True, inline="always", error_model="numpy")
def _ball(x, lo, inv_bin, nb, b, reach):
    """Radius of the ball around ``x`` that the bins within ``reach`` of its bin ``b``
    surely contain (a side where the grid ends has no points beyond it: inf if all do)."""
    radius = np.inf
    for a in range(3):
        if b[a] - reach > 0:
            radius = min(radius, x[a] - (lo[a] + (b[a] - reach) / inv_bin[a]))
        if b[a] + reach < nb[a] - 1:
            radius = min(radius, lo[a] + (b[a] + reach + 1) / inv_bin[a] - x[a])
    return radius


@njit(cache=True, error_model="numpy")
def _query(centers, pos, ids, lo, inv_bin, nb, ndiv, start, order, where, spos, cutoff,
           n_max, first_reach, nbr, vec, d2s):
    """Neighbours (within cutoff, self excluded) of the points `centers`, sorted; with
    n_max > 0 only the first n_max of each list (the n_max nearest, same order and ties),
    looked for first among the points of the bins within ``first_reach`` of the centre's
    that lie in the ball those bins surely contain (~20 candidates, not the ~50 of the
    whole block, go through the selection). ``where[i]``: the slot of point i in the
    bin-sorted ``spos`` (``order`` its inverse)."""
    nc = centers.shape[0]
    cut2 = cutoff * cutoff
    offsets = np.zeros(nc + 1, np.int64)
    cap = nbr.shape[0]  # output buffers from the caller, grown here if too short
    maxocc = 0
    for k in range(start.shape[0] - 1):
        maxocc = max(maxocc, start[k + 1] - start[k])
    ccap = min(maxocc * (2 * ndiv + 1) ** 3, pos.shape[0]) + 1
    cd2 = np.empty(ccap)
    cbits = cd2.view(np.int64)
    cslot = np.empty(ccap, np.int64)  # candidates by their slot in spos
    cj = np.empty(ccap, np.int64)
    cid = np.empty(ccap, np.int64)
    keys = np.empty(ccap, np.int64)
    perm = np.empty(ccap, np.int64)
    tot = 0
    for c in range(nc):
        i = centers[c]
        own = where[i]
        xi0 = pos[i, 0]
        xi1 = pos[i, 1]
        xi2 = pos[i, 2]
        b0 = min(max(int(np.floor((xi0 - lo[0]) * inv_bin[0])), 0), nb[0] - 1)
        b1 = min(max(int(np.floor((xi1 - lo[1]) * inv_bin[1])), 0), nb[1] - 1)
        b2 = min(max(int(np.floor((xi2 - lo[2]) * inv_bin[2])), 0), nb[2] - 1)
        # N nearest: first the points in the ball that the bins within first_reach surely
        # contain, enough when N of them (and any tie of the N-th) lie well inside it
        reach = first_reach if 0 < n_max else ndiv
        while True:
            ball = _ball(pos[i], lo, inv_bin, nb, (b0, b1, b2), reach) if reach < ndiv \
                else np.inf
            ball2 = min(cut2, ball * ball)
            zlo = max(b2 - reach, 0)
            zhi = min(b2 + reach + 1, nb[2])
            m = 0
            for x in range(max(b0 - reach, 0), min(b0 + reach + 1, nb[0])):
                for y in range(max(b1 - reach, 0), min(b1 + reach + 1, nb[1])):
                    base = (x * nb[1] + y) * nb[2]
                    for s in range(start[base + zlo], start[base + zhi]):
                        dx = spos[s, 0] - xi0
                        dy = spos[s, 1] - xi1
                        dz = spos[s, 2] - xi2
                        r2 = dx * dx + dy * dy + dz * dz
                        cd2[m] = r2  # written always, kept by the count: no branch
                        cslot[m] = s
                        m += (r2 <= ball2) & (s != own)
            if 0 < n_max < m:
                m = nearest_first(cd2, cslot, m, n_max, keys)
            if ball * ball > cut2 * (1.0 + 1e-6):
                break  # every point within the cutoff was a candidate
            far = 0.0
            for k in range(m):
                far = max(far, cd2[k])
            if m >= n_max and far * (1.0 + 1e-6) < ball2:
                break  # no point outside the ball can be among (or tie with) these
            reach = ndiv
        for k in range(m):
            cj[k] = order[cslot[k]]
            cid[k] = ids[cj[k]]
        rank_order(cd2, cbits, m, keys, perm)
        fix_ties(perm, cd2, m, m, cid, cj)
        if 0 < n_max < m:
            m = n_max
        if tot + m > cap:
            cap = max(2 * cap, tot + m)
            nbr2 = np.empty(cap, np.int64)
            vec2 = np.empty((cap, 3), np.float64)
            d22 = np.empty(cap, np.float64)
            nbr2[:tot] = nbr[:tot]
            vec2[:tot] = vec[:tot]
            d22[:tot] = d2s[:tot]
            nbr = nbr2
            vec = vec2
            d2s = d22
        for r in range(m):
            k = perm[r]
            s = cslot[k]
            nbr[tot + r] = cj[k]
            vec[tot + r, 0] = spos[s, 0] - xi0
            vec[tot + r, 1] = spos[s, 1] - xi1
            vec[tot + r, 2] = spos[s, 2] - xi2
            d2s[tot + r] = cd2[k]
        tot += m
        offsets[c + 1] = tot
    for e in range(tot):  # in place, and views, not copies: fresh arrays of this size
        d2s[e] = np.sqrt(d2s[e])  # cost more in page faults than the search itself
    return offsets, nbr[:tot], vec[:tot], d2s[:tot]


@njit(cache=True, error_model="numpy")
def _count_within(centers, pos, lo, inv_bin, nb, ndiv, start, order, spos, cutoff):
    nc = centers.shape[0]
    cut2 = cutoff * cutoff
    out = np.zeros(nc, np.int64)
    for c in range(nc):
        i = centers[c]
        b0 = min(max(int(np.floor((pos[i, 0] - lo[0]) * inv_bin[0])), 0), nb[0] - 1)
        b1 = min(max(int(np.floor((pos[i, 1] - lo[1]) * inv_bin[1])), 0), nb[1] - 1)
        b2 = min(max(int(np.floor((pos[i, 2] - lo[2]) * inv_bin[2])), 0), nb[2] - 1)
        n = 0
        for x in range(max(b0 - ndiv, 0), min(b0 + ndiv + 1, nb[0])):
            for y in range(max(b1 - ndiv, 0), min(b1 + ndiv + 1, nb[1])):
                for z in range(max(b2 - ndiv, 0), min(b2 + ndiv + 1, nb[2])):
                    k = (x * nb[1] + y) * nb[2] + z
                    for s in range(start[k], start[k + 1]):
                        dx = spos[s, 0] - pos[i, 0]
                        dy = spos[s, 1] - pos[i, 1]
                        dz = spos[s, 2] - pos[i, 2]
                        if dx * dx + dy * dy + dz * dz <= cut2 and order[s] != i:
                            n += 1
        out[c] = n
    return out


def periodic_images(positions, cell, pbc, cutoff):
    """Wrap atoms into the cell and add the periodic images within `cutoff` of it.

    Returns (points, orig): the first N points are the wrapped atoms, in input order;
    `orig[p]` is the atom index of point p.
    """
    n = len(positions)
    pbc = np.asarray(pbc, bool)
    if not pbc.any() or n == 0:
        return positions.copy(), np.arange(n, dtype=np.int64)
    inv = np.linalg.inv(cell)
    frac = positions @ inv
    for d in range(3):
        if pbc[d]:
            f = frac[:, d] - np.floor(frac[:, d])
            f[f >= 1.0] -= 1.0
            frac[:, d] = f
    base = frac @ cell
    vol = abs(np.linalg.det(cell))
    reach = np.zeros(3)
    nimg = np.zeros(3, np.int64)
    for d in range(3):
        if pbc[d]:
            cr = np.cross(cell[(d + 1) % 3], cell[(d + 2) % 3])
            height = vol / np.linalg.norm(cr)
            reach[d] = cutoff / height
            nimg[d] = int(np.ceil(reach[d]))
    pts = [base]
    origs = [np.arange(n, dtype=np.int64)]
    ranges = [range(-int(k), int(k) + 1) for k in nimg]
    for t in itertools.product(*ranges):
        if t == (0, 0, 0):
            continue
        tv = np.asarray(t, np.float64)
        mask = np.ones(n, bool)
        for d in range(3):
            if pbc[d] and t[d] != 0:
                f = frac[:, d] + tv[d]
                mask &= (f >= -reach[d]) & (f < 1.0 + reach[d])
        idx = np.nonzero(mask)[0]
        if len(idx):
            pts.append(base[idx] + tv @ cell)
            origs.append(idx.astype(np.int64))
    return np.ascontiguousarray(np.concatenate(pts)), np.concatenate(origs)


class CellList:
    """Cell list over a set of points; query the sorted neighbours of chunks of centres."""

    def __init__(self, points, point_ids, orig, n_centers, cutoff, ndiv=2):
        if not cutoff > 0:
            raise ValueError(f"CellList: cutoff must be positive, got {cutoff}")
        self.points = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        self.point_ids = np.ascontiguousarray(point_ids, dtype=np.int64)
        self.orig = np.ascontiguousarray(orig, dtype=np.int64)
        self.n_centers = int(n_centers)
        self.cutoff = float(cutoff)
        self.ndiv = int(ndiv)
        npts = len(self.points)
        if npts:
            lo = self.points.min(axis=0)
            hi = self.points.max(axis=0)
        else:
            lo = np.zeros(3)
            hi = np.zeros(3)
        extent = np.maximum(hi - lo, 1e-12)
        binsize = self.cutoff / self.ndiv
        nb = np.maximum(np.floor(extent / binsize), 1).astype(np.int64)
        limit = max(8 * npts, 1000)
        while np.prod(nb) > limit:
            binsize *= 1.25
            nb = np.maximum(np.floor(extent / binsize), 1).astype(np.int64)
        self._lo = lo
        self._nb = nb
        self._inv_bin = nb / extent
        self._start, self._order = _build_bins(self.points, lo, self._inv_bin, nb)
        self._spos = np.ascontiguousarray(self.points[self._order])
        self._where = np.empty(npts, np.int64)  # slot of each point in the sorted _spos
        self._where[self._order] = np.arange(npts, dtype=np.int64)
        # expected list length (+25 %) from the mean density (a flat or thin set counts
        # as 2 cutoffs thick): the output is then sized once
        volume = np.prod(np.maximum(extent, 2.0 * self.cutoff))
        expected = npts / volume * 4.0 / 3.0 * np.pi * self.cutoff ** 3
        self._hint = int(min(max(1.25 * expected, 8.0), max(npts, 8))) + 1
        self._density = npts / volume
        self._source = None

    @classmethod
    def periodic(cls, positions, cell, pbc, ids, cutoff) -> CellList:
        """Cell list of a periodic frame: every atom is a centre; images as the cutoff needs.

        Works for triclinic cells and for cutoffs larger than half the box (several images
        of the same atom, including the centre's own images, can be neighbours).
        Directions with pbc False are open (no wrapping, no images).
        """
        positions = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        n = len(positions)
        ids = np.arange(1, n + 1, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        points, orig = periodic_images(positions, cell, pbc, float(cutoff))
        cl = cls(points, ids[orig], orig, n, cutoff)
        cl._source = ("periodic", positions, cell, pbc, ids)
        return cl

    @classmethod
    def open(cls, positions, ids, n_centers, cutoff, ndiv: int = 2) -> CellList:
        """Cell list of an open set: the first n_centers points are centres, all points are
        candidate neighbours, no wrapping. Bins are cutoff / ``ndiv`` wide (3 suits
        N-nearest searches: their first pass then scans a tighter block)."""
        positions = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
        n = len(positions)
        ids = np.arange(1, n + 1, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        if not 0 <= n_centers <= n:
            raise ValueError(f"CellList.open: n_centers={n_centers} outside 0..{n}")
        cl = cls(positions, ids, np.arange(n, dtype=np.int64), n_centers, cutoff, ndiv)
        cl._source = ("open", positions, ids, n_centers)
        return cl

    def with_cutoff(self, cutoff) -> CellList:
        """The same cell list rebuilt for another cutoff."""
        src = self._source
        if src is None:
            return CellList(self.points, self.point_ids, self.orig, self.n_centers, cutoff,
                            self.ndiv)
        if src[0] == "periodic":
            return CellList.periodic(*src[1:], cutoff)
        return CellList.open(*src[1:], cutoff)

    def query_points(self, centers, max_neighbors: int | None = None) -> NeighborList:
        """Neighbours of arbitrary point indices (0 <= p < number of points);
        ``max_neighbors``: only the first (nearest) that many of each list."""
        centers = np.ascontiguousarray(centers, dtype=np.int64)
        n_max = int(max_neighbors or 0)
        # NumPy's allocator maps large buffers with huge pages: first touch is ~10x
        # cheaper than for numba's (the lists are ~40 bytes x 100 per centre)
        cap = max(len(centers) * (self._hint if n_max <= 0 else n_max), 64)
        offsets, nbr, vec, dist = _query(centers, self.points, self.point_ids, self._lo,
                                         self._inv_bin, self._nb, self.ndiv, self._start,
                                         self._order, self._where, self._spos, self.cutoff,
                                         n_max,
                                         self._first_reach(n_max), np.empty(cap, np.int64),
                                         np.empty((cap, 3)), np.empty(cap))
        if len(centers) and n_max <= 0:
            self._hint = max(8, int(1.25 * len(nbr) / len(centers)) + 1)
        return NeighborList(offsets, self.orig[nbr], vec, dist)

    def _first_reach(self, n_max: int) -> int:
        """Bins around a centre searched first for its ``n_max`` nearest: enough for a
        ball holding n_max points at the mean density (the radius of the 12th neighbour in
        a liquid, a little more than in a crystal), so the search rarely widens; the search
        widens to the whole cutoff whenever the ball is not sure to hold them."""
        if n_max <= 0 or self.ndiv <= 1 or self._density <= 0:
            return self.ndiv
        radius = (3.0 * n_max / (4.0 * np.pi * self._density)) ** (1.0 / 3.0)
        return int(min(max(np.ceil(radius * self._inv_bin.max()), 1), self.ndiv))

    def query(self, start: int = 0, stop: int | None = None) -> NeighborList:
        """Neighbours of centres start..stop-1 (default: all centres)."""
        stop = self.n_centers if stop is None else min(int(stop), self.n_centers)
        start = max(0, int(start))
        return self.query_points(np.arange(start, max(start, stop), dtype=np.int64))

    def count(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Number of neighbours within the cutoff of centres start..stop-1."""
        stop = self.n_centers if stop is None else min(int(stop), self.n_centers)
        centers = np.arange(start, max(start, stop), dtype=np.int64)
        return _count_within(centers, self.points, self._lo, self._inv_bin, self._nb,
                             self.ndiv, self._start, self._order, self._spos, self.cutoff)
