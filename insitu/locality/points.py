"""The one kind of input every descriptor runs on: an open set of points.

An MPI rank's local + ghost atoms are such a set (the first ``n_centers`` are the atoms to
describe, the rest only neighbours). A periodic :class:`insitu.Frame` becomes one by adding
the periodic images within the descriptor's cutoff (:meth:`Points.from_frame`), so offline
and in-situ results come from the same code path. :class:`NeighborQuery` pairs the points
with a cell list, so several descriptors can share one neighbour search (freud's
``compute(system, neighbors=...)`` pattern).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .cell_list import CellList, periodic_images

__all__ = ["Points", "NeighborQuery", "IdIndex", "as_points", "find_ids", "nearest_ndiv",
           "unique_ids", "present_types"]

# An id table (one int32 per id in the span of the ids) is used while the span is at most
# this many ids per point plus DENSE_SPAN_SLACK: a rank's ids spread over the whole system
# (many ranks) fall back to a sorted search.
DENSE_SPAN_PER_ID = 16
DENSE_SPAN_SLACK = 1 << 16


@dataclass
class Points:
    """Positions (M, 3) float64, types (M,) int64, global ids (M,) int64 of an open point
    set; the first ``n_centers`` points are the centres, all are candidate neighbours."""

    positions: np.ndarray
    types: np.ndarray
    ids: np.ndarray
    n_centers: int
    _centre_index: IdIndex | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64).reshape(-1, 3)
        m = len(self.positions)
        self.types = np.ascontiguousarray(self.types, dtype=np.int64).reshape(m)
        self.ids = (np.arange(1, m + 1, dtype=np.int64) if self.ids is None
                    else np.ascontiguousarray(self.ids, dtype=np.int64).reshape(m))
        self.n_centers = int(self.n_centers)
        if not 0 <= self.n_centers <= m:
            raise ValueError(f"Points: n_centers={self.n_centers} outside 0..{m}")

    def __len__(self) -> int:
        return self.n_centers

    @property
    def centre_index(self) -> IdIndex:
        """:class:`IdIndex` of the centres' global ids, built once (an analysis looks ids
        up several times per call: images, the halo, the consensus)."""
        if self._centre_index is None:
            self._centre_index = IdIndex(self.ids[:self.n_centers])
        return self._centre_index

    def within_reach(self, reach: float) -> Points:
        """The centres and only those other points within ``reach`` of the centres'
        bounding box, in their order (a superset of the points within ``reach`` of some
        centre): a rank's ghost shell reaches LAMMPS's ghost cutoff, the skin beyond what
        an analysis reads, and every extra point costs the cell list and the lookups."""
        n = self.n_centers
        if n == 0 or n == len(self.ids):
            return self
        keep = _near_box(self.positions, n, float(reach))
        if len(keep) == len(self.ids):
            return self
        return Points(self.positions[keep], self.types[keep], self.ids[keep], n)

    @classmethod
    def from_frame(cls, frame, cutoff: float) -> Points:
        """The frame's atoms (wrapped into the cell, in frame order) followed by their
        periodic images within ``cutoff`` of the cell."""
        points, orig = periodic_images(frame.positions, frame.cell, frame.pbc, float(cutoff))
        return cls(points, frame.types[orig], frame.ids[orig], len(frame.positions))


class IdIndex:
    """Rows of global ids among ``ids`` (e.g. a rank's centres), for repeated lookups:
    a table indexed by id where the ids are dense enough (LAMMPS's ids on a few ranks: a
    lookup is one gather), else their stable argsort and a binary search
    (:func:`find_ids`). ``distinct``: no id repeats (for a repeated id the first row is
    given)."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids, dtype=np.int64)
        n = len(self.ids)
        self.order = self.table = None
        self.lo = int(self.ids.min()) if n else 0
        span = int(self.ids.max()) - self.lo + 1 if n else 0
        if n and span <= DENSE_SPAN_PER_ID * n + DENSE_SPAN_SLACK:
            table = np.full(span, -1, np.int32)
            table[self.ids - self.lo] = np.arange(n, dtype=np.int32)
            self.distinct = bool(np.count_nonzero(table >= 0) == n)
            if self.distinct:  # with repeats, which row a scatter keeps is undefined
                self.table = table
        if self.table is None:
            self.order = np.argsort(self.ids, kind="stable")
            ordered = self.ids[self.order]
            self.distinct = not bool(np.any(ordered[1:] == ordered[:-1]))

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, found) as :func:`find_ids`, rows of ids not found are 0."""
        wanted = np.asarray(wanted, dtype=np.int64)
        if self.table is None:
            rows, found = find_ids(self.ids, wanted, self.order)
            rows[~found] = 0
            return rows, found
        at = wanted - self.lo
        inside = (at >= 0) & (at < len(self.table))
        rows = self.table[np.where(inside, at, 0)].astype(np.int64)
        found = inside & (rows >= 0)
        rows[~found] = 0
        return rows, found


def unique_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(ids, return_index=True, return_inverse=True)`` of global atom ids:
    (the distinct ids, sorted; the first position of each; each id's place among them).
    Where the ids span a range of at most DENSE_SPAN_PER_ID per id (plus slack), as a
    rank's ghost ids do on a few ranks, one pass through an id table instead of a sort
    (an in-situ call asks this of a few thousand ids several times)."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return ids.copy(), np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, hi = int(ids.min()), int(ids.max())
    if hi - lo + 1 > DENSE_SPAN_PER_ID * len(ids) + DENSE_SPAN_SLACK:
        return np.unique(ids, return_index=True, return_inverse=True)
    return _unique_by_table(ids, lo, hi - lo + 1)


@njit(cache=True)
def _unique_by_table(ids, lo, span):  # pragma: no cover - compiled
    table = np.full(span, -1, np.int64)  # id - lo -> its first position, then its place
    n_distinct = 0
    for i in range(ids.shape[0]):
        if table[ids[i] - lo] < 0:
            table[ids[i] - lo] = i
            n_distinct += 1
    distinct = np.empty(n_distinct, np.int64)
    first = np.empty(n_distinct, np.int64)
    k = 0
    for v in range(span):
        if table[v] >= 0:
            distinct[k] = v + lo
            first[k] = table[v]
            table[v] = k
            k += 1
    inverse = np.empty(ids.shape[0], np.int64)
    for i in range(ids.shape[0]):
        inverse[i] = table[ids[i] - lo]
    return distinct, first, inverse


@njit(cache=True)
def _near_box(positions, n_centers, reach):  # pragma: no cover - compiled
    """Indices of the centres and of the other points inside the centres' bounding box
    widened by ``reach``."""
    lo = positions[0].copy()
    hi = positions[0].copy()
    for i in range(n_centers):
        for d in range(3):
            lo[d] = min(lo[d], positions[i, d])
            hi[d] = max(hi[d], positions[i, d])
    keep = np.empty(positions.shape[0], np.int64)
    m = 0
    for i in range(positions.shape[0]):
        inside = i < n_centers
        if not inside:
            inside = True
            for d in range(3):
                if positions[i, d] < lo[d] - reach or positions[i, d] > hi[d] + reach:
                    inside = False
                    break
        if inside:
            keep[m] = i
            m += 1
    return keep[:m]


def present_types(types: np.ndarray) -> np.ndarray:
    """The distinct atom types among ``types``, sorted (``np.unique``; LAMMPS's types are
    small positive integers: counted instead of sorted, ~20x faster for a rank's atoms)."""
    types = np.asarray(types)
    if len(types) == 0:
        return np.zeros(0, np.int64)
    if types.dtype.kind in "iu" and 0 <= int(types.min()) and int(types.max()) < 1 << 16:
        return np.flatnonzero(np.bincount(types))
    return np.unique(types)


def find_ids(ids: np.ndarray, wanted: np.ndarray,
             order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, found): for each global id in ``wanted`` a row of ``ids`` holding it (the
    first, for repeated ids) and whether there is one (rows of the others are
    meaningless). ``ids`` need not be sorted; ``order``: their stable argsort, when the
    caller has it already (several lookups in the same ids)."""
    ids = np.asarray(ids)
    wanted = np.asarray(wanted)
    if len(ids) == 0:
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    if order is None:
        order = np.argsort(ids, kind="stable")
    rows = order[np.minimum(np.searchsorted(ids, wanted, sorter=order), len(ids) - 1)]
    return rows, ids[rows] == wanted


def nearest_ndiv(max_neighbors: int | None) -> int:
    """Bins per cutoff of a cell list: 3 for N-nearest searches (measured 1.5x faster for
    the 12 nearest within 5-6 A of a dense metal), 2 for whole-sphere lists."""
    return 2 if max_neighbors is None else 3


def as_points(system, cutoff: float) -> Points:
    """``system`` as :class:`Points`: Points pass through, frames get their images."""
    if isinstance(system, Points):
        return system
    if hasattr(system, "cell") and hasattr(system, "pbc"):
        return Points.from_frame(system, cutoff)
    raise TypeError(f"expected an insitu.Frame or insitu.locality.Points, got "
                    f"{type(system).__name__}")


@dataclass
class NeighborQuery:
    """Points and a cell list over them, built once at the largest radius any analysis of
    the step needs; each descriptor keeps the neighbours within its own radius."""

    points: Points
    cells: CellList

    @classmethod
    def from_system(cls, system, cutoff: float, radius: float | None = None,
                    max_neighbors: int | None = None) -> NeighborQuery:
        """Points covering ``cutoff`` around the centres (a frame's periodic images), with a
        cell list searching within ``radius`` (default ``cutoff``): a descriptor that reads
        its neighbours' neighbours (q-bar) needs points to twice its search radius but
        searches within the radius only. ``max_neighbors``: the readers keep at most that
        many nearest neighbours (finer bins then)."""
        points = as_points(system, cutoff)
        return cls(points, CellList.open(points.positions, points.ids, points.n_centers,
                                         cutoff if radius is None else radius,
                                         nearest_ndiv(max_neighbors)))

    @property
    def cutoff(self) -> float:
        return self.cells.cutoff
