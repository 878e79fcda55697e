"""Neighbors Map descriptor (Allera et al., Sec. 2.2), numba kernel.

For a centre j with neighbours v(j) within ``cutoff`` (sorted by distance, ties by global
id), node 0 is j and node l its l-th nearest neighbour; G_j holds the centre and *all*
its neighbours within the cutoff.

* Row 1:   M[1, k]   = w_0 w_k / r_{0k}^gamma,                          k = 1..n_G
* Row l+1: M[l+1, k] = (1 / r_{0l}^beta) w_l w_{lk} / r_{l;k}^gamma,    l = 1..n_G-1

where r_{l;k} is the distance from node l to its k-th nearest node of G_j (centre
included, node l excluded; ties by global id, then node order).  Missing nodes or
neighbours give 0.  One channel per weight vector (channel 1 geometric by default).
Computed in float64, returned as float32 of shape (N, C, n_G, n_G).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..locality import TIE_RTOL, fix_ties, present_types
from .base import MAX_CUTOFF_ANGSTROM, Descriptor, empty_array, register_descriptor
from .sorting_network import compare_exchange, compare_exchange32, network_table

__all__ = ["NeighborsMap"]


@njit(cache=True, inline="always", error_model="numpy")
def _inv_pow(d2, half_gamma, mode):
    """d^-gamma from d^2: mode 0 -> gamma 2, 1 -> gamma 1, 2 -> general."""
    if mode == 0:
        return 1.0 / d2
    if mode == 1:
        return 1.0 / np.sqrt(d2)
    return d2 ** (-half_gamma)


_BIG_KEY = 0x7FEFFFFFFFFFFFFF  # bit pattern of the largest finite double


@njit(cache=True, error_model="numpy")
def _nm_kernel(offsets, nbr, vectors, dists, center_types, center_ids, types, ids, wtab,
               n_g, gamma, beta, tie_by_id, net_off, net_i, net_j, out):
    """Fill out[c, ch, :, :] (zeroed float32) for each centre c of the neighbour list.

    All rows of one centre are sorted together: lane l of X holds the squared distances
    from node l to every node (self = +big), and one sorting network (Batcher, pruned to
    the first n_G + 1 outputs) runs over the node axis for all lanes at once.  With equal
    weights only the sorted values matter; otherwise the keys are the bit patterns of d^2
    with the node index in the low bits (unique, exact order up to 2^-46 relative), and
    tie_by_id re-orders distances equal within TIE_RTOL by global id (this matters when the
    channel weights differ between types).
    """
    nc = offsets.shape[0] - 1
    nch = wtab.shape[0]
    half_gamma = 0.5 * gamma
    mode = 2
    if gamma == 2.0:
        mode = 0
    elif gamma == 1.0:
        mode = 1
    maxm = 0
    for c in range(nc):
        m = offsets[c + 1] - offsets[c]
        if m > maxm:
            maxm = m
    nn = maxm + 1
    lp = ((n_g + 7) // 8) * 8
    na = max(nn, lp)
    nx = np.zeros(na)
    ny = np.zeros(na)
    nz = np.zeros(na)
    nid = np.empty(na, np.int64)
    nsec = np.arange(na).astype(np.int64)
    ntype = np.empty(na, np.int64)
    xbuf = np.empty(nn * lp)
    X = xbuf.reshape((nn, lp))
    XB = xbuf.view(np.int64).reshape((nn, lp))
    rd2 = np.empty(nn)
    perm = np.empty(nn, np.int64)
    # node indices are only needed (packed in the keys) when weights differ between nodes
    packed = nch > 1 or tie_by_id
    gl = np.ones(lp)
    T = np.empty((n_g, lp))
    KI = np.empty((n_g, lp), np.int64)
    tie = np.zeros(lp, np.int64)
    for c in range(nc):
        s0 = offsets[c]
        m = offsets[c + 1] - s0
        nid[0] = center_ids[c]
        ntype[0] = center_types[c]
        nx[0] = 0.0
        ny[0] = 0.0
        nz[0] = 0.0
        for k in range(m):
            j = nbr[s0 + k]
            nid[k + 1] = ids[j]
            ntype[k + 1] = types[j]
            nx[k + 1] = vectors[s0 + k, 0]
            ny[k + 1] = vectors[s0 + k, 1]
            nz[k + 1] = vectors[s0 + k, 2]
        for k in range(m + 1, na):
            nx[k] = 0.0
            ny[k] = 0.0
            nz[k] = 0.0
        nsel = min(n_g, m)
        nrow = min(n_g, m + 1)
        if nsel == 0:
            continue
        nbits = 1
        while (1 << nbits) < m + 1:
            nbits += 1
        mask = (np.int64(1) << nbits) - 1
        # squared distances, lane l = from node l
        for k in range(m + 1):
            xk = nx[k]
            yk = ny[k]
            zk = nz[k]
            for l in range(lp):
                dx = nx[l] - xk
                dy = ny[l] - yk
                dz = nz[l] - zk
                X[k, l] = dx * dx + dy * dy + dz * dz
            if packed:
                for l in range(lp):
                    XB[k, l] = (XB[k, l] & ~mask) | k
        if packed:
            for l in range(min(lp, m + 1)):
                XB[l, l] = (_BIG_KEY & ~mask) | l
        else:
            for l in range(min(lp, m + 1)):
                X[l, l] = np.inf
        # sort every lane along the node axis
        if lp == 32:
            compare_exchange32(X, net_i, net_j, net_off[m + 1], net_off[m + 2])
        else:
            compare_exchange(X, net_i, net_j, net_off[m + 1], net_off[m + 2], lp)
        # row weights g_1 = 1, g_{l+1} = r_{0l}^-beta
        for l in range(lp):
            gl[l] = 1.0
        for l in range(1, nrow):
            d = dists[s0 + l - 1]
            if beta == 3.0:
                gl[l] = 1.0 / (d * d * d)
            else:
                gl[l] = d ** (-beta)
        if nch == 1 and not tie_by_id:
            w2 = wtab[0, ntype[0]] * wtab[0, ntype[0]]
            for l in range(lp):
                gl[l] *= w2
            if mode == 0:
                # 1/d^2: float32 reciprocal refined by one Newton step in float64
                # (relative error ~1e-14, several times faster than a float64 division)
                for q in range(nsel):
                    for l in range(lp):
                        x = X[q, l]
                        r0 = np.float64(np.float32(1.0) / np.float32(x))
                        T[q, l] = gl[l] * (r0 * (2.0 - x * r0))
            else:
                for q in range(nsel):
                    for l in range(lp):
                        T[q, l] = gl[l] * _inv_pow(X[q, l], half_gamma, mode)
            for l in range(nrow):
                for q in range(nsel):
                    out[c, 0, l, q] = T[q, l]
        else:
            # keys read as doubles are d^2 to 2^-46 relative; node index in the low bits
            for q in range(nsel):
                for l in range(lp):
                    x = X[q, l]
                    if mode == 0:
                        r0 = np.float64(np.float32(1.0) / np.float32(x))
                        T[q, l] = gl[l] * (r0 * (2.0 - x * r0))
                    else:
                        T[q, l] = gl[l] * _inv_pow(x, half_gamma, mode)
                    KI[q, l] = XB[q, l] & mask
            if tie_by_id:
                # lanes with (near-)equal distances among the first n_G + 1 positions
                for l in range(lp):
                    tie[l] = 0
                for q in range(min(nsel, m - 1)):
                    for l in range(lp):
                        a = X[q, l]
                        b = X[q + 1, l]
                        tie[l] |= (b - a) <= TIE_RTOL * b
                for l in range(nrow):
                    if tie[l]:
                        for q in range(m):
                            k = XB[q, l] & mask
                            perm[q] = k
                            rd2[k] = X[q, l]
                        fix_ties(perm, rd2, m, nsel, nid, nsec)
                        for q in range(nsel):
                            k = perm[q]
                            KI[q, l] = k
                            T[q, l] = gl[l] * _inv_pow(rd2[k], half_gamma, mode)
            for l in range(nrow):
                tl = ntype[l]
                for q in range(nsel):
                    tk = ntype[KI[q, l]]
                    v = T[q, l]
                    for ch in range(nch):
                        out[c, ch, l, q] = v * wtab[ch, tl] * wtab[ch, tk]


def _normalise_weights(channel_weights):
    if channel_weights is None:
        return None
    if isinstance(channel_weights, dict):
        channel_weights = [channel_weights]
    if not isinstance(channel_weights, (list, tuple)):
        raise ValueError("NeighborsMap: channel_weights must be a list of {type: weight} "
                         f"dicts, got {type(channel_weights).__name__}")
    out = []
    for ch, w in enumerate(channel_weights):
        if not isinstance(w, dict):
            raise ValueError(f"NeighborsMap: channel_weights[{ch}] must be a dict "
                             f"{{type: weight}}, got {type(w).__name__}")
        out.append({int(t): float(v) for t, v in w.items()})
    if not out:
        raise ValueError("NeighborsMap: channel_weights is an empty list")
    return out


@register_descriptor
class NeighborsMap(Descriptor):
    """Neighbors Map descriptor; compute(system) -> (N, C, n_grid, n_grid) float32.

    Parameters
    ----------
    cutoff : radius of the neighbour graph G_j (Angstrom).
    n_grid : image size n_G (default 32).
    gamma, beta : exponents of the pixel and row weights (defaults 2 and 3).
    channel_weights : list of C dicts {atom type: weight}; None -> one geometric channel
        (all weights 1).  Every atom type present must appear in every channel.
    min_neighbors : fewer neighbours than this within the cutoff (isolated or gas-like
        atoms) and the environment is not described: its map is NaN, which the classifier
        reports as ``unknown``. None -> n_grid // 2.
    """

    kind = "neighbors_map"
    dtype = np.float32
    chunk_size = 1024

    def __init__(self, cutoff, n_grid=32, gamma=2.0, beta=3.0, channel_weights=None,
                 min_neighbors=None):
        if not 0 < float(cutoff) <= MAX_CUTOFF_ANGSTROM:
            raise ValueError(f"NeighborsMap: cutoff must be in (0, {MAX_CUTOFF_ANGSTROM}] "
                             f"Angstrom, got {cutoff}")
        if not 1 <= int(n_grid) <= 256:
            raise ValueError(f"NeighborsMap: n_grid must be in 1..256, got {n_grid}")
        if not (np.isfinite(float(gamma)) and np.isfinite(float(beta))):
            raise ValueError(f"NeighborsMap: gamma and beta must be finite, got {gamma}, {beta}")
        self.cutoff = float(cutoff)
        self.n_grid = int(n_grid)
        self.gamma = float(gamma)
        self.beta = float(beta)
        self.channel_weights = _normalise_weights(channel_weights)
        self.min_neighbors = None if min_neighbors is None else int(min_neighbors)

    @property
    def n_channels(self) -> int:
        return 1 if self.channel_weights is None else len(self.channel_weights)

    @property
    def required_cutoff(self) -> float:
        return self.cutoff

    @property
    def neighbors_needed(self) -> int:
        """Fewest neighbours within the cutoff for which an environment is described."""
        return self.n_grid // 2 if self.min_neighbors is None else self.min_neighbors

    @property
    def feature_shape(self) -> tuple:
        return (self.n_channels, self.n_grid, self.n_grid)

    def check_types(self, types_present) -> None:
        """Raise ValueError naming the type and channel if a type has no weight."""
        types_present = [int(t) for t in np.unique(np.asarray(types_present, np.int64))]
        for t in types_present:
            if t < 1:
                raise ValueError(f"NeighborsMap: atom types must be >= 1, got type {t}")
        if self.channel_weights is None:
            return
        for ch, w in enumerate(self.channel_weights):
            for t in types_present:
                if t not in w:
                    raise ValueError(
                        f"NeighborsMap: atom type {t} has no weight in channel {ch + 1} "
                        f"(channel_weights[{ch}] = {w}); the model was built for types "
                        f"{sorted(w)}")

    def _weight_table(self, max_type: int) -> np.ndarray:
        ntab = max(int(max_type), 1) + 1
        if self.channel_weights is None:
            return np.ones((1, ntab))
        tab = np.zeros((len(self.channel_weights), ntab))
        for ch, w in enumerate(self.channel_weights):
            for t, v in w.items():
                if 0 <= t < ntab:
                    tab[ch, t] = v
        return tab

    def _prepare(self, cells, points):
        types, ids = points.types, points.ids
        wtab = self._weight_table(types.max() if len(types) else 1)
        present = present_types(types)
        sub = wtab[:, present] if len(present) else wtab
        # distance ties need the id order only when the weights tell the atoms apart
        tie_by_id = bool(np.any(sub != sub.flat[0]))
        return cells, types, ids, wtab, tie_by_id

    def _chunk(self, ctx, start, stop, out=None):
        cells, types, ids, wtab, tie_by_id = ctx
        nl = self.neighbors_of(cells, np.arange(start, stop, dtype=np.int64))
        if out is None:
            out = empty_array((stop - start, wtab.shape[0], self.n_grid, self.n_grid),
                              np.float32)
        counts = np.diff(nl.offsets)
        # with tie fixing a run of equal distances may extend past n_G: sort fully then
        need = (1 << 30) if tie_by_id else self.n_grid + 1
        net_off, net_i, net_j = network_table(counts + 1, need)
        _nm_kernel(nl.offsets, nl.index, nl.vectors, nl.distances, types[start:stop],
                   ids[start:stop], types, ids, wtab, self.n_grid, self.gamma, self.beta,
                   tie_by_id, net_off, net_i, net_j, out)
        out[counts < self.neighbors_needed] = np.nan
        return out
