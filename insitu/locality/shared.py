"""One neighbour search read by several descriptors.

:class:`SharedNeighbors` stands in for a :class:`~insitu.locality.CellList` in a
:class:`~insitu.locality.NeighborQuery`: the sorted neighbour lists of *all* centres within
its cutoff are searched once, on first use, and every later query of centres is a slice or
gather of them; a descriptor with a smaller radius keeps the prefix within its radius
(:meth:`NeighborList.within`), so its neighbours are exactly those of its own search (lists
are sorted by distance, ties by global id, whatever the radius). Points that are not
centres (the ghosts whose own neighbours a q-bar descriptor reads) are searched on demand.
"""

from __future__ import annotations

import numpy as np

from .cell_list import CellList
from .neighbor_list import NeighborList
from .points import NeighborQuery, Points

__all__ = ["SharedNeighbors", "shared_query", "MAX_SHARED_ENTRIES"]

MAX_SHARED_ENTRIES = 1 << 23
"""Most neighbour entries kept for all centres (40 bytes each: ~320 MiB); a larger search
is not kept, each query then searches the shared cell list again."""


class SharedNeighbors:
    """Duck-types the part of :class:`CellList` descriptors use (``cutoff``, ``n_centers``,
    ``query_points``) over a cell list whose centre lists are searched once."""

    def __init__(self, cells: CellList, max_entries: int = MAX_SHARED_ENTRIES):
        self.cells = cells
        self.cutoff = cells.cutoff
        self.n_centers = cells.n_centers
        self.max_entries = int(max_entries)
        self._all: NeighborList | None = None
        self.searches = 0  # searches of all centres (1 once used, whatever the readers)

    def all_centers(self) -> NeighborList | None:
        """Sorted neighbours of every centre (searched at the first call), or None when
        they would exceed ``max_entries``."""
        if self._all is None and self.n_centers:
            estimate = self.n_centers * max(self.cells.count(0, min(self.n_centers, 64))
                                            .mean(), 1.0)
            if estimate > self.max_entries:
                return None
            self._all = self.cells.query(0, self.n_centers)
            self.searches += 1
        return self._all

    def query_points(self, centers, max_neighbors: int | None = None) -> NeighborList:
        """Neighbours of the point indices ``centers`` (as :meth:`CellList.query_points`)."""
        return self._query_all(centers).first(max_neighbors)

    def _query_all(self, centers) -> NeighborList:
        centers = np.ascontiguousarray(centers, dtype=np.int64)
        n = self.n_centers
        if len(centers) == 0 or (centers.min() >= n):
            return self.cells.query_points(centers)
        ordered = len(centers) < 2 or bool((np.diff(centers) > 0).all())
        split = int(np.searchsorted(centers, n)) if ordered else -1
        full = self.all_centers() if centers.min() >= 0 and (
            split >= 0 or centers.max() < n) else None
        if full is None:
            return self.cells.query_points(centers)
        if split < 0 or split == len(centers):
            return full.take(centers)
        return NeighborList.concatenate(full.take(centers[:split]),
                                        self.cells.query_points(centers[split:]))


def shared_query(points: Points, radius: float,
                 max_entries: int = MAX_SHARED_ENTRIES) -> NeighborQuery:
    """A :class:`NeighborQuery` over ``points`` (an open set: a rank's local + ghost atoms)
    whose centre neighbour lists within ``radius`` are searched once for every descriptor
    given it (``Classifier.classify(points, neighbors=...)``)."""
    cells = CellList.open(points.positions, points.ids, points.n_centers, radius)
    return NeighborQuery(points, SharedNeighbors(cells, max_entries))
