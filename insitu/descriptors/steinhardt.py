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
over the atom and its selected neighbours. With ``averaged``, ``nearest_spread=True``
appends one radial feature: the relative spread of the nearest-neighbour distance r1 over
the atom and its selected neighbours, s_i = std / mean of {r1_j : j in {i} + N(i)}. q_lm
see bond directions only, so an environment without an excluded volume (uniformly random
points) looks like a liquid in them; its s (~0.3) lies far above that of any condensed
phase (thermal: < 0.1), and unlike distances to the k-th neighbour r1 hardly changes when
atoms are missing (an atom loses its nearest neighbour only with its whole first shell).
A neighbour that is a periodic image of a centre reads the centre's q_lm and r1; in situ
(``exchange``) those of other ranks' atoms come from their owners, so a rank needs ghost
atoms to the search radius, not to twice it.

Feature layout per atom: [q_l for l in ls] (+ [w^_l for l in ls] if wl) (+ [r1 spread] if
nearest_spread); with cross_species the q_l / w^_l block again for the cross-species
neighbours.
"""

from __future__ import annotations

import numpy as np

from ..locality import csr_entries
from .base import MAX_CUTOFF_ANGSTROM, Descriptor, register_descriptor
from .spherical import legendre_coefficients, wigner3j, wl_columns
from .steinhardt_kernels import (
    invariants_kernel,
    nearest_distance_kernel,
    qlm_kernel,
    select_neighbors,
)

__all__ = ["Steinhardt", "wigner3j", "COINCIDENT_ANGSTROM"]

COINCIDENT_ANGSTROM = 1e-3
"""Two atoms closer than this are one atom counted twice (a broken input), not a bond."""

KEPT_WORK_BYTES = 1 << 27
"""Largest per-call work array (q_lm of every point) a descriptor keeps between calls."""



# ---------------------------------------------------------------------------------------
@register_descriptor
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
    nearest_spread : also the relative spread of the nearest-neighbour distance over the
        atom and its selected neighbours (needs averaged; not with cross_species).
    min_neighbors : a centre with fewer selected neighbours (an isolated or gas-like atom)
        is not described: its features are NaN, reported as ``unknown`` by the classifier.
        None -> 4 (a gas atom has 0-3 neighbours; crystals with half their atoms
        missing keep more than 3 of their 12 nearest).
    """

    kind = "steinhardt"
    dtype = np.float64
    chunk_size = 8192

    def __init__(self, ls=(3, 4, 6, 8, 10, 12), n_neighbors=12, cutoff=None,
                 cross_species=False, adaptive_factor=None, search_cutoff=5.0,
                 averaged=False, wl=False, min_neighbors=None, nearest_spread=False):
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
        self.min_neighbors = None if min_neighbors is None else int(min_neighbors)
        self.nearest_spread = bool(nearest_spread)
        if self.nearest_spread and (self.cross_species or not self.averaged):
            raise ValueError("Steinhardt: nearest_spread needs averaged=True and no "
                             "cross_species (a spread over the neighbourhood)")
        if len(self.ls) > 32 or max(self.ls) > 32:
            raise ValueError(f"Steinhardt: at most 32 values of l, each <= 32; got {ls}")
        for name in ("cutoff", "search_cutoff"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= MAX_CUTOFF_ANGSTROM:
                raise ValueError(f"Steinhardt: {name} must be in (0, {MAX_CUTOFF_ANGSTROM}] "
                                 f"Angstrom, got {value}")
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
        self._coefs = legendre_coefficients(self._lmax)
        self._ls_arr = np.array(self.ls, np.int64)
        self._nlm = int(sum(l + 1 for l in self.ls))
        self._ncols = self._nlm + 2 * int(self.nearest_spread)  # q_lm, then r1, r1^2
        self._q_offsets = np.cumsum([0] + [l + 1 for l in self.ls[:-1]]).astype(np.int64)
        self._wl_terms = wl_columns(self.ls, self._q_offsets, self.wl)
        self._kept_work: dict[str, np.ndarray] = {}  # q_lm arrays between computations

    # -- properties ------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return (len(self.ls) * (2 if self.wl else 1) * (2 if self.cross_species else 1)
                + int(self.nearest_spread))

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
        if self.nearest_spread:
            block.append("r1_spread")
        return block

    def to_metadata(self) -> dict:
        """As :meth:`Descriptor.to_metadata`, without ``nearest_spread`` when it is off:
        models and datasets made before it existed keep their fingerprint."""
        meta = super().to_metadata()
        if not self.nearest_spread:
            meta.pop("nearest_spread")
        return meta

    def _base_radius(self) -> float:
        return self.cutoff if self.cutoff is not None else self.search_cutoff

    @property
    def required_cutoff(self) -> float:
        r = self._base_radius()
        return 2.0 * r if self.averaged else r

    @property
    def exchange_cutoff(self) -> float:
        """With the neighbours' q_lm from their owners (in situ), q-bar needs points to the
        search radius only."""
        return self._base_radius()

    @property
    def neighbors_needed(self) -> int:
        """Fewest selected neighbours for which an environment is described."""
        return 4 if self.min_neighbors is None else self.min_neighbors

    @property
    def search_radius(self) -> float:
        return self._base_radius()

    @property
    def max_neighbors(self) -> int | None:
        """N of the N-nearest rule (with or without a cutoff); the adaptive radius of
        LESS eq. 2 may take more."""
        return self.n_neighbors if self.adaptive_factor is None else None

    # -- evaluation -------------------------------------------------------------------------
    def _prepare(self, cells, points):
        types = points.types
        ctx = {"cells": cells, "types": types}
        if self.averaged:  # per point, computed once per call (filled lazily): q_lm, the
            m = len(types)  # selected neighbours (start in "sel", count), coincidence
            blocks = 2 if self.cross_species else 1
            ctx.update(q=[self._take_work(f"q{b}", (m, self._ncols))
                          for b in range(2 * blocks)],
                       done=np.zeros(m, bool), start=np.zeros(m, np.int64),
                       nsel=np.zeros(m, np.int64), coincident=np.zeros(m, bool),
                       sel=np.empty(16 * m, np.int64), used=0,
                       source=image_sources(points), missing=None)
            if ctx["source"] is None:  # repeated ids: each point computes its own
                ctx["source"] = np.arange(m, dtype=np.int64)
                ctx["repeated_ids"] = True
        return ctx

    def _take_work(self, name: str, shape: tuple) -> np.ndarray:
        """A float64 array of ``shape`` (contents undefined) for one computation: one kept
        from the last, when it was given back (:meth:`_finish`) and is large enough. In situ
        every call asks for the same sizes, and fresh arrays cost page faults (~3 ms of the
        ~70 ms of 16,000 atoms' q-bar). A computation holds its arrays until it ends, so
        two at once (interleaved ``iter_compute``) never share one."""
        kept = self._kept_work.pop(name, None)
        size = int(np.prod(shape))
        if kept is None or kept.size < size:
            kept = np.empty(size)
        return kept[:size].reshape(shape)

    def _finish(self, ctx) -> None:
        """Keep the computation's q_lm arrays for the next (up to KEPT_WORK_BYTES each)."""
        for b, array in enumerate(ctx.get("q", [])):
            base = array.base if array.base is not None else array
            if base.nbytes <= KEPT_WORK_BYTES:
                self._kept_work[f"q{b}"] = base.reshape(-1)

    def _neighbors(self, ctx, centers):
        """Neighbour list of point indices `centers` and the selected prefix lengths.

        The rule is the same for periodic frames and for a rank's local + ghost atoms, so
        in-situ and offline results agree: neighbours are searched within the search
        radius only. A centre with fewer than n_neighbors there (a rare, very open
        liquid environment) uses those it has; an adaptive radius is clamped to it."""
        nl = self.neighbors_of(ctx["cells"], centers)
        nsel, _ = select_neighbors(nl.offsets, nl.distances,
                          0 if self.n_neighbors is None else self.n_neighbors,
                          -1.0 if self.cutoff is None else self.cutoff,
                          -1.0 if self.adaptive_factor is None else self.adaptive_factor,
                          self.search_radius)
        return nl, nsel

    def _qlm(self, ctx, nl, nsel, center_types, out=None, rows=None):
        """[q_re, q_im] (+ cross-species [x_re, x_im]) of the list's centres, each
        (centres, nlm); or written into rows ``rows`` of the arrays ``out``."""
        nc = nl.n_centers
        if out is None:
            blocks = 2 if self.cross_species else 1
            out = [np.zeros((nc, self._ncols)) for _ in range(2 * blocks)]
            rows = np.arange(nc)
        xre, xim = out[2:] if self.cross_species else (out[0][:0], out[0][:0])
        a, b, diag, sub = self._coefs
        qlm_kernel(nl.offsets, nl.index, nl.vectors, nl.distances, nsel, center_types,
                   ctx["types"], self._ls_arr, self._lmax, a, b, diag, sub,
                   self.cross_species, rows, out[0], out[1], xre, xim)
        if self.nearest_spread:
            nearest_distance_kernel(nl.offsets, nl.distances, rows, out[0], out[1], self._nlm)
        return out

    def _invariants(self, qre, qim, centre_rows=None, offsets=None,
                    entry_rows=None) -> np.ndarray:
        """[q_l] (+ [w^_l]) from q_lm (m >= 0 columns, per l) of rows ``centre_rows``
        (default: every row), each averaged with the rows ``entry_rows[offsets[c]:
        offsets[c + 1]]`` when given (Lechner-Dellago)."""
        if centre_rows is None:
            centre_rows = np.arange(len(qre), dtype=np.int64)
            offsets = np.zeros(len(qre) + 1, np.int64)
            entry_rows = offsets[:0]
        out = np.empty((len(centre_rows), len(self.ls) * (2 if self.wl else 1)
                        + (qre.shape[1] - self._nlm) // 2))
        invariants_kernel(qre, qim, centre_rows, offsets, entry_rows, self._ls_arr,
                          self._q_offsets, *self._wl_terms, self.wl, out, 0)
        return out

    def _point_qlm(self, ctx, points) -> None:
        """Search, q_lm and selected neighbours of the point indices ``points`` not done
        yet in this call (each point's depend on its own neighbours only, so they are the
        same whichever chunk asks first, and no point is searched twice)."""
        todo = points[~ctx["done"][points]]
        if len(todo) == 0:
            return
        nl, nsel = self._neighbors(ctx, todo)
        self._qlm(ctx, nl, nsel, ctx["types"][todo], out=ctx["q"], rows=todo)
        chosen = nl.index if len(nl.index) == nsel.sum() else \
            nl.index[csr_entries(nl.offsets, np.arange(len(todo)), nsel)]
        used = ctx["used"]
        if used + len(chosen) > len(ctx["sel"]):
            ctx["sel"] = np.concatenate([ctx["sel"][:used],
                                         np.empty(max(used, len(chosen)), np.int64)])
        ctx["sel"][used:used + len(chosen)] = chosen
        ctx["start"][todo] = used + np.cumsum(nsel) - nsel
        ctx["nsel"][todo] = nsel
        ctx["used"] = used + len(chosen)
        ctx["coincident"][todo] = coincident(nl)
        ctx["done"][todo] = True

    def _share(self, ctx, exchange, points) -> None:
        """q_lm of every centre, then those of the ghost neighbours that are no image of a
        centre from the ranks that own them (one collective call). A ghost the exchange
        does not find (it drifted beyond the halo's reach) is marked missing: the centres
        that read it are not described."""
        if not self.averaged:
            return
        ids, n = points.ids, points.n_centers
        for start in range(0, n, self.chunk_size):
            self._point_qlm(ctx, np.arange(start, min(n, start + self.chunk_size)))
        read = ctx["source"][ctx["sel"][:ctx["used"]]]
        wanted = np.zeros(len(ids), bool)
        if not ctx.get("repeated_ids"):
            wanted[read[read >= n]] = True
        wanted = np.flatnonzero(wanted)
        q = ctx["q"]
        found, *_ = exchange(ids[wanted], points.positions[wanted], points.centre_index,
                             *(block[:n] for block in q), into=(q, wanted))
        if ctx.get("repeated_ids"):  # after the collective call: no rank is left waiting
            raise ValueError("Steinhardt: the halo exchange of q-bar needs distinct global "
                             "atom ids (LAMMPS: atom_modify id yes)")
        ctx["done"][wanted] = True
        if not found.all():
            ctx["missing"] = np.zeros(len(ids), bool)
            ctx["missing"][wanted[~found]] = True

    def _averaged_chunk(self, ctx, centers):
        """Features of ``centers`` from the Lechner-Dellago q-bar_lm: their q_lm averaged
        over the centre and its selected neighbours (from the per-call caches; a ghost
        that is an image of a centre reads the centre's q_lm); (features, nsel, not
        describable)."""
        self._point_qlm(ctx, centers)
        nsel = ctx["nsel"][centers]
        neighbours = ctx["source"][ctx["sel"][csr_entries(ctx["start"], centers, nsel)]]
        pending = np.zeros(len(ctx["done"]), bool)  # a mask, not np.unique: no sort
        pending[neighbours] = True
        pending &= ~ctx["done"]
        self._point_qlm(ctx, np.flatnonzero(pending))
        offsets = np.zeros(len(centers) + 1, np.int64)
        np.cumsum(nsel, out=offsets[1:])
        bad = ctx["coincident"][centers]
        if ctx["missing"] is not None:  # a neighbour's q_lm did not arrive
            read = np.concatenate([[0], np.cumsum(ctx["missing"][neighbours])])
            bad = bad | (read[offsets[1:]] > read[offsets[:-1]])
        q = ctx["q"]
        feats = [self._invariants(allre, allim, centers, offsets, neighbours)
                 for allre, allim in zip(q[0::2], q[1::2])]
        return feats[0] if len(feats) == 1 else np.concatenate(feats, axis=1), nsel, bad

    def _chunk(self, ctx, start, stop, out=None):
        centers = np.arange(start, stop, dtype=np.int64)
        if self.averaged:
            feats, nsel, bad = self._averaged_chunk(ctx, centers)
        else:
            nl, nsel = self._neighbors(ctx, centers)
            qre, qim, *cross = self._qlm(ctx, nl, nsel, ctx["types"][start:stop])
            bad = coincident(nl)
            feats = self._invariants(qre, qim)
            if self.cross_species:
                feats = np.concatenate([feats, self._invariants(*cross)], axis=1)
        # not describable (too few neighbours, or an atom on top of another one): NaN,
        # which the classifier reports as unknown
        feats[(nsel < self.neighbors_needed) | bad] = np.nan
        if out is not None:
            out[...] = feats
            return out
        return feats


def image_sources(points) -> np.ndarray | None:
    """(M,) point whose q_lm each point of ``points`` reads: a ghost (a periodic image; in
    situ also a rank's image of its own atom) that carries the global id of a centre reads
    the centre's, computed from the centre's complete environment (the image's may lie at
    the edge of the points); other points their own. None when centres repeat an id (no
    image can be told by id: every point reads its own)."""
    ids, n_centers = points.ids, points.n_centers
    source = np.arange(len(ids), dtype=np.int64)
    if len(ids) == n_centers or n_centers == 0:
        return source
    index = points.centre_index
    if not index.distinct:
        return None
    rows, image = index.find(ids[n_centers:])
    source[n_centers:][image] = rows[image]
    return source


def coincident(nl) -> np.ndarray:
    """(centres,) bool: an atom closer than COINCIDENT_ANGSTROM to the centre (lists are
    sorted by distance: the nearest one tells)."""
    has = np.diff(nl.offsets) > 0
    out = np.zeros(nl.n_centers, bool)
    out[has] = nl.distances[nl.offsets[:-1][has]] <= COINCIDENT_ANGSTROM
    return out
