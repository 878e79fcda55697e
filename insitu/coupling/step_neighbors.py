"""One neighbour search per MD step for the analyses attached to one LAMMPS instance.

A rank's ghost shell reaches LAMMPS's ghost cutoff, which includes the neighbour skin;
the points an analysis gets stop at its reach (:meth:`insitu.locality.Points.within_reach`:
the search radius with a halo exchange, the whole cutoff without), so the cell list and
the lookups skip ghosts nothing reads.

Several ``insitu_attach`` analyses on the same LAMMPS job (e.g. a Neighbors Map and a BOO
model) are called one after the other in the same step on the same atoms. Each registers
its descriptor and interval here; at a step where two or more are due, the first one
extracts the rank's points and builds a :func:`insitu.locality.shared_query` at the
largest search radius of the analyses due, and the others reuse it when their own
extraction is the same atoms at the same positions (the cache key is the step, the
atom counts and the positions themselves). Each descriptor keeps the neighbours within its
own radius, so the results are those of separate searches, bit for bit. With one analysis
due nothing is cached.

An analysis whose fix was removed (``unfix``) is not called any more, and nothing tells
Python so: an analysis that missed one of its steps is dropped from the registry, so it
does not make the ones attached after it build a shared search for a reader that never
comes (which cost the next analysis ~40 % of its call).
"""

from __future__ import annotations

import numpy as np

from ..locality import NeighborQuery, Points, shared_query
from .ghost_check import ghost_requirement
from .rank_analysis import extract_points

__all__ = ["StepNeighbors", "Reader", "step_neighbors"]


class StepNeighbors:
    """The per-step neighbour cache of one LAMMPS instance on this rank."""

    def __init__(self):
        self.analyses: list[Reader] = []
        self._key = None
        self._points: Points | None = None
        self._query: NeighborQuery | None = None
        self._readers = 0
        self.hits = 0
        self.shared_searches = 0  # shared queries built (one per step with 2+ analyses due)

    def register(self, classifier, every: int, step: int, halo=None) -> Reader:
        """An analysis with ``classifier`` called every ``every`` steps, attached at MD
        step ``step``, with or without a ``halo`` exchange (which sets how far from a
        centre it reads points); its :meth:`Reader.points` gives it the points of each
        call."""
        reach, _ = ghost_requirement(classifier, halo is not None)
        reader = Reader(self, float(classifier.descriptor.search_radius), int(every),
                        int(step), float(reach))
        self.analyses.append(reader)
        return reader

    def due(self, step: int) -> list[Reader]:
        """The analyses called at ``step`` (after dropping those that missed a step of
        theirs: their fix is gone)."""
        self.analyses = [a for a in self.analyses if a.last_step >= step - a.every]
        return [a for a in self.analyses if a.every > 0 and step % a.every == 0]

    def points(self, lmp, step: int, reader: Reader) -> tuple[Points, NeighborQuery | None]:
        """This rank's points at ``step`` and, when several analyses are due, the neighbour
        query they share (None otherwise: the classifier searches on its own)."""
        reader.last_step = int(step)
        if reader not in self.analyses:  # dropped while it was not called (a minimize)
            self.analyses.append(reader)
        due = self.due(step)
        points = extract_points(lmp).within_reach(max([reader.reach] +
                                                       [a.reach for a in due]))
        radii = [a.radius for a in due]
        if len(radii) < 2:
            return points, None
        key = (int(step), points.n_centers, len(points.positions))
        if (key == self._key and self._points is not None
                and np.array_equal(points.positions, self._points.positions)
                and np.array_equal(points.ids, self._points.ids)
                and np.array_equal(points.types, self._points.types)):
            self.hits += 1
            query = self._query
        else:
            query = shared_query(points, max(radii))
            self.shared_searches += 1
            self._key, self._points, self._query, self._readers = key, points, query, 0
        self._readers += 1
        if self._readers >= len(radii):  # the last analysis of the step: drop the cache
            self._key = self._points = self._query = None
        return query.points, query


class Reader:
    """One analysis registered with :class:`StepNeighbors`: its search radius, interval,
    the step of its last call (at first, of its attachment) and its reach."""

    def __init__(self, owner: StepNeighbors, radius: float, every: int, step: int,
                 reach: float):
        self.owner = owner
        self.radius = radius
        self.every = every
        self.last_step = step
        self.reach = reach

    def points(self, lmp, step: int) -> tuple[Points, NeighborQuery | None]:
        """:meth:`StepNeighbors.points` for this analysis."""
        return self.owner.points(lmp, step, self)


_BY_INSTANCE: dict[int, StepNeighbors] = {}


def step_neighbors(lmp) -> StepNeighbors:
    """The cache of the LAMMPS instance ``lmp`` (one per instance and rank)."""
    handle = getattr(lmp, "lmp", None)
    key = int(getattr(handle, "value", None) or id(lmp))
    return _BY_INSTANCE.setdefault(key, StepNeighbors())
