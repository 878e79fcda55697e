"""One neighbour search read by several descriptors (insitu.locality.shared_query), and the
q-bar descriptor's searches: within its radius only, each point's q_lm computed once."""

from __future__ import annotations

import numpy as np
import pytest

from insitu.descriptors import NeighborsMap, Steinhardt
from insitu.frame import Frame
from insitu.locality import CellList, NeighborList, shared_query
from insitu.testing import lattice, thermal


def open_points(cutoff: float, seed: int = 3):
    """A thermal fcc crystal with 20 % vacancies and two atom types, as an open point set
    (a rank's local + ghost atoms)."""
    f = thermal(lattice("fcc", 3.52, 5), 0.12, seed=seed)
    rng = np.random.default_rng(seed)
    keep = rng.random(len(f.positions)) > 0.2
    frame = Frame(f.positions[keep], f.cell, f.pbc, rng.integers(1, 3, int(keep.sum())))
    return frame.to_points(cutoff)


DESCRIPTORS = [NeighborsMap(cutoff=5.5, n_grid=16),
               NeighborsMap(cutoff=4.5, n_grid=16, channel_weights=[{1: 1.0, 2: 1.5}]),
               Steinhardt(ls=(4, 6, 8), averaged=True, cross_species=True, search_cutoff=4.0),
               Steinhardt(ls=(4, 6), n_neighbors=None, cutoff=3.2, wl=True)]


def test_shared_search_equals_separate_searches():
    points = open_points(max(d.required_cutoff for d in DESCRIPTORS))
    query = shared_query(points, max(d.search_radius for d in DESCRIPTORS))
    for d in DESCRIPTORS:
        alone = d.compute(points)
        shared = np.concatenate([x.copy() for _, _, x in d.iter_compute(
            points, query, chunk_size=53, reuse=True)])
        np.testing.assert_array_equal(shared, alone)  # bit for bit, NaN where undescribed
    assert query.cells.searches == 1  # the centres' lists were searched once for all


def test_shared_query_refuses_a_smaller_radius_than_a_descriptor_needs():
    points = open_points(6.0)
    with pytest.raises(ValueError, match="shared query"):
        NeighborsMap(cutoff=5.5, n_grid=16).compute(points, shared_query(points, 5.0))


def test_take_returns_the_rows_asked_for():
    points = open_points(5.0)
    cells = CellList.open(points.positions, points.ids, points.n_centers, 5.0)
    full = cells.query()
    for rows in (np.arange(10, 40), np.array([5, 3, 200, 3]), np.array([], np.int64)):
        part = full.take(rows)
        assert part.n_centers == len(rows)
        for k, r in enumerate(rows):
            a, b = full.offsets[r], full.offsets[r + 1]
            c, e = part.offsets[k], part.offsets[k + 1]
            np.testing.assert_array_equal(part.index[c:e], full.index[a:b])
            np.testing.assert_array_equal(part.vectors[c:e], full.vectors[a:b])
    both = NeighborList.concatenate(full.take(np.arange(3)), full.take(np.arange(3, 9)))
    np.testing.assert_array_equal(both.distances, full.take(np.arange(9)).distances)


def test_qbar_searches_within_its_radius_and_each_point_once(monkeypatch):
    """The averaged (q-bar) descriptor needs points to twice its radius, but its searches
    stay within the radius, and each point's q_lm is computed once per call (before,
    every chunk searched at 2 r and recomputed its neighbours' q_lm, centres included)."""
    d = Steinhardt(ls=(4, 6), averaged=True, search_cutoff=4.0)
    points = open_points(d.required_cutoff)
    searched = []
    original = CellList.query_points

    def recording(self, centers, max_neighbors=None):
        searched.append((self.cutoff, np.asarray(centers).copy()))
        return original(self, centers, max_neighbors)

    monkeypatch.setattr(CellList, "query_points", recording)
    for _ in d.iter_compute(points, chunk_size=64):  # the default path: its own search
        pass
    assert {c for c, _ in searched} == {4.0}
    everything = np.concatenate([c for _, c in searched])
    assert len(everything) == len(np.unique(everything))  # no point searched twice
    assert np.isin(np.arange(points.n_centers), everything).all()


def test_a_search_of_the_nearest_serves_readers_of_fewer_and_searches_for_the_others():
    """A shared search keeping the 12 nearest (a BOO model and its neighbour consensus)
    gives readers of 12 or fewer exactly their own search (also within a smaller radius);
    a reader of more, or of all, is searched for on its own, and gets what it asked."""
    points = open_points(8.0)
    alone = CellList.open(points.positions, points.ids, points.n_centers, 5.0)
    query = shared_query(points, 5.0, max_neighbors=12)
    centres = np.arange(points.n_centers)
    for k, radius in ((12, 5.0), (6, 5.0), (12, 3.0)):
        got = query.cells.query_points(centres, k).within(radius)
        want = alone.query_points(centres, k).within(radius)
        np.testing.assert_array_equal(got.offsets, want.offsets)
        np.testing.assert_array_equal(got.index, want.index)
        np.testing.assert_array_equal(got.vectors, want.vectors)
    assert query.cells.searches == 1
    for k in (13, None):
        got = query.cells.query_points(centres, k)
        want = alone.query_points(centres, k)
        np.testing.assert_array_equal(got.index, want.index)
    assert query.cells.searches == 1  # those were not served from the kept lists
    d = Steinhardt(ls=(4, 6), averaged=True, search_cutoff=5.0, wl=True)
    np.testing.assert_array_equal(d.compute(points, query), d.compute(points))
