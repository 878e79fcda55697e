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

from .cell_list import CellList, periodic_images

__all__ = ["Points", "NeighborQuery", "IdIndex", "as_points", "find_ids", "nearest_ndiv"]

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
