"""The one kind of input every descriptor runs on: an open set of points.

An MPI rank's local + ghost atoms are such a set (the first ``n_centers`` are the atoms to
describe, the rest only neighbours). A periodic :class:`insitu.Frame` becomes one by adding
the periodic images within the descriptor's cutoff (:meth:`Points.from_frame`), so offline
and in-situ results come from the same code path. :class:`NeighborQuery` pairs the points
with a cell list, so several descriptors can share one neighbour search (freud's
``compute(system, neighbors=...)`` pattern).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cell_list import CellList, periodic_images

__all__ = ["Points", "NeighborQuery", "as_points", "find_ids", "nearest_ndiv"]


@dataclass
class Points:
    """Positions (M, 3) float64, types (M,) int64, global ids (M,) int64 of an open point
    set; the first ``n_centers`` points are the centres, all are candidate neighbours."""

    positions: np.ndarray
    types: np.ndarray
    ids: np.ndarray
    n_centers: int

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

    @classmethod
    def from_frame(cls, frame, cutoff: float) -> Points:
        """The frame's atoms (wrapped into the cell, in frame order) followed by their
        periodic images within ``cutoff`` of the cell."""
        points, orig = periodic_images(frame.positions, frame.cell, frame.pbc, float(cutoff))
        return cls(points, frame.types[orig], frame.ids[orig], len(frame.positions))


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
