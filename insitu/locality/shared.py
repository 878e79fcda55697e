"""One neighbour search read by several descriptors.

:class:`SharedNeighbors` stands in for a :class:`~insitu.locality.CellList` in a
:class:`~insitu.locality.NeighborQuery`: the sorted neighbour lists of *all* centres within
its cutoff are searched once, on first use, and every later query of centres is a slice or
gather of them; a descriptor with a smaller radius keeps the prefix within its radius
(:meth:`NeighborList.within`), so its neighbours are exactly those of its own search (lists
are sorted by distance, ties by global id, whatever the radius). When every reader keeps
at most its N nearest (a Steinhardt descriptor and a neighbour consensus, both N = 12), the
search keeps only the ``max_neighbors`` nearest of each centre, which is what each reader
would have found alone. Points that are not centres (the ghosts whose own neighbours a
q-bar descriptor reads) are searched on demand.
"""

from __future__ import annotations

import numpy as np

from .cell_list import CellList
from .neighbor_list import NeighborList
from .points import NeighborQuery, Points, nearest_ndiv

__all__ = ["SharedNeighbors", "shared_query", "MAX_SHARED_ENTRIES"]

MAX_SHARED_ENTRIES = 1 << 23
"""Most neighbour entries kept for all centres (40 bytes each: ~320 MiB); a larger search
is not kept, each query then searches the shared cell list again."""


class SharedNeighbors:
    """Duck-types the part of :class:`CellList` descriptors use (``cutoff``, ``n_centers``,
    ``query_points``) over a cell list whose centre lists are searched once.

    ``max_neighbors``: keep only the N nearest of each centre (None: all within the
    cutoff); a reader asking for more (or for all) is searched for on its own."""

    def __init__(self, cells: CellList, max_entries: int = MAX_SHARED_ENTRIES,
                 max_neighbors: int | None = None):
        self.cells = cells
        self.cutoff = cells.cutoff
        self.n_centers = cells.n_centers
        self.max_entries = int(max_entries)
        self.max_neighbors = None if max_neighbors is None else int(max_neighbors)
        self._all: NeighborList | None = None
        self.searches = 0  # searches of all centres (1 once used, whatever the readers)

    def all_centers(self) -> NeighborList | None:
        """Sorted neighbours of every centre (searched at the first call), or None when
        they would exceed ``max_entries``."""
        if self._all is None and self.n_centers:
            per_centre = max(self.cells.count(0, min(self.n_centers, 64)).mean(), 1.0)
            if self.max_neighbors is not None:
                per_centre = min(per_centre, self.max_neighbors)
            if self.n_centers * per_centre > self.max_entries:
                return None
            self._all = self.cells.query_points(np.arange(self.n_centers, dtype=np.int64),
                                                self.max_neighbors)
            self.searches += 1
        return self._all

    def query_points(self, centers, max_neighbors: int | None = None) -> NeighborList:
        """Neighbours of the point indices ``centers`` (as :meth:`CellList.query_points`)."""
        if self.max_neighbors is not None and (max_neighbors is None
                                               or max_neighbors > self.max_neighbors):
            return self.cells.query_points(centers, max_neighbors)  # more than is kept
        return self._query_all(centers).first(max_neighbors)

    def _query_all(self, centers) -> NeighborList:
        centers = np.ascontiguousarray(centers, dtype=np.int64)
        n = self.n_centers
        if len(centers) == 0 or (centers.min() >= n):
            return self.cells.query_points(centers, self.max_neighbors)
        ordered = len(centers) < 2 or bool((np.diff(centers) > 0).all())
        split = int(np.searchsorted(centers, n)) if ordered else -1
        full = self.all_centers() if centers.min() >= 0 and (
            split >= 0 or centers.max() < n) else None
        if full is None:
            return self.cells.query_points(centers, self.max_neighbors)
        if split < 0 or split == len(centers):
            return full.take(centers)
        return NeighborList.concatenate(
            full.take(centers[:split]),
            self.cells.query_points(centers[split:], self.max_neighbors))


def shared_query(points: Points, radius: float, max_entries: int = MAX_SHARED_ENTRIES,
                 max_neighbors: int | None = None) -> NeighborQuery:
    """A :class:`NeighborQuery` over ``points`` (an open set: a rank's local + ghost atoms)
    whose centre neighbour lists within ``radius`` are searched once for every reader
    given it (``Classifier.classify(points, neighbors=...)``); ``max_neighbors``: every
    reader keeps at most that many nearest neighbours (None: some read all)."""
    cells = CellList.open(points.positions, points.ids, points.n_centers, radius,
                          nearest_ndiv(max_neighbors))
    return NeighborQuery(points, SharedNeighbors(cells, max_entries, max_neighbors))
