"""Neighbour search: periodic (orthogonal, triclinic, cutoff > half box) and open modes,
checked against brute-force enumeration of periodic images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from insitu.frame import Frame
from insitu.locality import CellList, NeighborList
from insitu.testing import lattice, thermal


def brute_force(frame: Frame, cutoff: float):
    """Per centre, the list of (distance, id, atom index) over all images within cutoff."""
    cell = frame.cell
    vol = abs(np.linalg.det(cell))
    nimg = []
    for d in range(3):
        if frame.pbc[d]:
            h = vol / np.linalg.norm(np.cross(cell[(d + 1) % 3], cell[(d + 2) % 3]))
            nimg.append(int(np.ceil(cutoff / h)) + 1)
        else:
            nimg.append(0)
    shifts = np.array(list(itertools.product(*[range(-k, k + 1) for k in nimg])), float)
    tvec = shifts @ cell
    frac = frame.positions @ np.linalg.inv(cell)
    frac[:, frame.pbc] -= np.floor(frac[:, frame.pbc])
    pos = frac @ cell
    out = []
    for c in range(len(frame)):
        d = pos[None, :, :] + tvec[:, None, :] - pos[c]
        r = np.linalg.norm(d, axis=2)
        sel = (r <= cutoff) & (r > 1e-12)
        img, j = np.nonzero(sel)
        out.append(sorted(zip(r[img, j], frame.ids[j], j)))
    return out


def _check_against_brute(frame, cutoff, nl: NeighborList):
    ref = brute_force(frame, cutoff)
    assert nl.n_centers == len(frame)
    for c in range(len(frame)):
        s, e = nl.offsets[c], nl.offsets[c + 1]
        got_d = nl.distances[s:e]
        exp = ref[c]
        assert e - s == len(exp), (c, e - s, len(exp))
        np.testing.assert_allclose(got_d, [x[0] for x in exp], rtol=0, atol=1e-10)
        # multiset of neighbour atoms agrees
        assert sorted(nl.index[s:e].tolist()) == sorted(x[2] for x in exp)
        # vectors consistent with distances and image-aware
        np.testing.assert_allclose(np.linalg.norm(nl.vectors[s:e], axis=1), got_d, atol=1e-12)
        # sorted by distance
        assert np.all(np.diff(got_d) >= -1e-12)


def test_orthogonal_matches_brute_force():
    f = thermal(lattice("fcc", 3.615, 3), 0.1, seed=1)
    cl = CellList.periodic(f.positions, f.cell, f.pbc, f.ids, 4.8)
    _check_against_brute(f, 4.8, cl.query())


@pytest.mark.parametrize("cutoff", [3.0, 7.5])
def test_triclinic_matches_brute_force(cutoff):
    rng = np.random.default_rng(2)
    cell = np.array([[6.0, 0.0, 0.0], [2.5, 5.5, 0.0], [-1.5, 2.0, 6.5]])
    frac = rng.random((40, 3))
    # some atoms outside the cell: they are wrapped
    pos = (frac + rng.integers(-2, 3, (40, 3))) @ cell
    f = Frame(pos, cell, [True] * 3, np.ones(40, int))
    cl = CellList.periodic(f.positions, f.cell, f.pbc, f.ids, cutoff)
    _check_against_brute(f, cutoff, cl.query())


def test_cutoff_larger_than_box_multiple_images():
    # 4-atom fcc cell, a = 3.6; cutoff 5 > box: the same atom (and the centre itself)
    # appears several times as a neighbour
    f = thermal(lattice("fcc", 3.6, 1), 0.05, seed=3)
    cl = CellList.periodic(f.positions, f.cell, f.pbc, f.ids, 5.0)
    nl = cl.query()
    _check_against_brute(f, 5.0, nl)
    assert 0 in nl.index[nl.offsets[0]:nl.offsets[1]]  # own images
    assert np.all(np.diff(nl.offsets) == 42)  # 12 + 6 + 24 fcc neighbours, 4 atoms


def test_atoms_outside_cell_are_wrapped():
    f = thermal(lattice("bcc", 3.0, 3), 0.05, seed=4)
    jumps = np.random.default_rng(4).integers(-3, 4, (len(f), 3))
    shifted = Frame(f.positions + jumps @ f.cell, f.cell, f.pbc, f.types)
    nl1 = CellList.periodic(f.positions, f.cell, f.pbc, f.ids, 4.5).query()
    nl2 = CellList.periodic(shifted.positions, f.cell, f.pbc, f.ids, 4.5).query()
    np.testing.assert_array_equal(nl1.offsets, nl2.offsets)
    np.testing.assert_array_equal(nl1.index, nl2.index)
    np.testing.assert_allclose(nl1.vectors, nl2.vectors, atol=1e-10)


def test_non_periodic_direction_is_open():
    f = thermal(lattice("sc", 2.5, 4), 0.02, seed=5)
    f = Frame(f.positions, f.cell, [True, True, False], f.types)
    nl = CellList.periodic(f.positions, f.cell, f.pbc, f.ids, 3.0).query()
    _check_against_brute(f, 3.0, nl)
    z = f.positions[:, 2]
    counts = np.diff(nl.offsets)
    # surface atoms along z have fewer neighbours than bulk ones
    assert counts[np.argmin(z)] < counts.max()


def test_chunks_equal_full_query_and_ties_by_id():
    # perfect crystal: many exact ties; order inside a shell must follow the global id,
    # whatever the atom order in the arrays
    f = lattice("fcc", 3.615, 3)
    rng = np.random.default_rng(6)
    ids = rng.permutation(len(f)) + 100
    cl = CellList.periodic(f.positions, f.cell, f.pbc, ids, 4.0)
    full = cl.query()
    parts = [cl.query(s, min(s + 17, len(f))) for s in range(0, len(f), 17)]
    np.testing.assert_array_equal(np.concatenate([p.index for p in parts]), full.index)
    for c in range(len(f)):
        s, e = full.offsets[c], full.offsets[c + 1]
        d = full.distances[s:e]
        nid = ids[full.index[s:e]]
        shell = np.abs(d - d[0]) < 1e-6
        assert shell.sum() == 12
        assert np.all(np.diff(nid[shell]) > 0)
    # permuting the atoms gives the same neighbour id sequences per centre id
    perm = rng.permutation(len(f))
    cl2 = CellList.periodic(f.positions[perm], f.cell, f.pbc, ids[perm], 4.0)
    nl2 = cl2.query()
    for c in range(len(f)):
        c2 = int(np.nonzero(perm == c)[0][0])
        a = ids[full.index[full.offsets[c]:full.offsets[c + 1]]]
        b = ids[perm][nl2.index[nl2.offsets[c2]:nl2.offsets[c2 + 1]]]
        np.testing.assert_array_equal(a, b)


def test_open_mode_centres_and_no_wrapping():
    rng = np.random.default_rng(7)
    pts = rng.random((300, 3)) * 12.0
    ids = rng.permutation(300).astype(np.int64) + 1
    cl = CellList.open(pts, ids, 50, 2.5)
    nl = cl.query()
    assert nl.n_centers == 50
    for c in range(50):
        d = np.linalg.norm(pts - pts[c], axis=1)
        d[c] = np.inf
        sel = np.nonzero(d <= 2.5)[0]
        exp = sorted(zip(d[sel], ids[sel], sel))
        s, e = nl.offsets[c], nl.offsets[c + 1]
        assert [int(x[2]) for x in exp] == nl.index[s:e].tolist()
        np.testing.assert_allclose(nl.vectors[s:e], pts[nl.index[s:e]] - pts[c])
    with pytest.raises(ValueError):
        CellList.open(pts, ids, 301, 2.5)


def test_empty_and_isolated():
    cl = CellList.open(np.zeros((0, 3)), None, 0, 3.0)
    assert cl.query().n_centers == 0
    cl = CellList.open(np.array([[0.0, 0, 0], [10.0, 0, 0]]), None, 2, 3.0)
    nl = cl.query()
    assert nl.offsets.tolist() == [0, 0, 0]


@pytest.mark.parametrize("structure,a,n_max", [("bcc", 2.87, 12), ("fcc", 3.615, 12),
                                               ("bcc", 2.87, 9), ("fcc", 3.615, 1)])
def test_nearest_n_are_the_first_n_of_the_full_list(structure, a, n_max):
    """The N-nearest search (BOO's 12 nearest) keeps exactly the first N entries of the
    sorted list, ties by global id included: in perfect bcc the 12 nearest take 4 of the
    6 second-shell atoms, in fcc 9 take 9 of 12 equidistant ones (all ties); thermal
    noise and a random atom order must not matter either."""
    rng = np.random.default_rng(3)
    for frame in (lattice(structure, a, 4), thermal(lattice(structure, a, 4), 0.1, seed=4)):
        ids = rng.permutation(len(frame)) + 7
        cl = CellList.periodic(frame.positions, frame.cell, frame.pbc, ids, 5.0)
        full = cl.query()
        near = cl.query_points(np.arange(len(frame)), max_neighbors=n_max)
        assert (np.diff(near.offsets) == n_max).all()
        first = full.first(n_max)
        np.testing.assert_array_equal(near.offsets, first.offsets)
        np.testing.assert_array_equal(near.index, first.index)
        np.testing.assert_array_equal(near.vectors, first.vectors)
        np.testing.assert_array_equal(near.distances, first.distances)


def test_nearest_n_with_fewer_candidates_and_open_points():
    """Centres with fewer than N neighbours within the cutoff keep all of them."""
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.5, 0], [0, 0, 2.0], [9.0, 9, 9]])
    cl = CellList.open(pos, None, 5, 2.5)
    near = cl.query_points(np.arange(5), max_neighbors=2)
    full = cl.query()
    np.testing.assert_array_equal(np.diff(near.offsets), np.minimum(np.diff(full.offsets), 2))
    np.testing.assert_array_equal(near.index, full.first(2).index)


@pytest.mark.parametrize("ndiv", [1, 2, 3, 4, 5])
def test_nearest_n_for_any_bin_width_and_uneven_density(ndiv):
    """The N-nearest search first scans the bins of a ball that should hold N atoms at the
    mean density and widens when it is not sure: a dense crystal next to a sparse gas
    (mean density wrong for both) gives exactly the first N of the full sorted list, on
    every bin width."""
    rng = np.random.default_rng(ndiv)
    crystal = thermal(lattice("fcc", 3.52, 4), 0.1, seed=ndiv).positions
    gas = rng.uniform(0.0, 14.0, (40, 3)) + np.array([16.0, 0.0, 0.0])
    pos = np.vstack([crystal, gas])
    ids = rng.permutation(len(pos)) + 1
    cl = CellList.open(pos, ids, len(pos), 6.0, ndiv=ndiv)
    for n_max in (1, 12, 20):
        _assert_nearest_are_first_of_full(cl, n_max)


def _assert_nearest_are_first_of_full(cl: CellList, n_max: int) -> None:
    """Every point's N-nearest search equals the first N of its full sorted list."""
    near = cl.query_points(np.arange(len(cl.points)), max_neighbors=n_max)
    first = cl.query_points(np.arange(len(cl.points))).first(n_max)
    for name in ("offsets", "index", "vectors", "distances"):
        np.testing.assert_array_equal(getattr(near, name), getattr(first, name))


@pytest.mark.parametrize("ndiv", [2, 3, 4, 5])
def test_nearest_n_with_points_on_bin_faces_and_at_the_cutoff(ndiv):
    """A simple cubic block whose spacing is a whole number of bins (points on the faces
    of the bins) and a cutoff equal to a neighbour distance (neighbours exactly at it):
    the N-nearest search, which first scans a ball inside a block of bins, still equals
    the first N of the full sorted list, also for edge and corner atoms that have fewer
    than N neighbours within the cutoff."""
    spacing = 2.5
    pos = np.stack(np.meshgrid(*[np.arange(8) * spacing] * 3, indexing="ij"), -1)
    pos = pos.reshape(-1, 3)
    ids = np.random.default_rng(ndiv).permutation(len(pos)) + 1
    cl = CellList.open(pos, ids, len(pos), 2 * spacing, ndiv=ndiv)
    full = cl.query()
    assert np.diff(full.offsets).min() < 12 < np.diff(full.offsets).max()
    for n_max in (8, 12, 16):
        _assert_nearest_are_first_of_full(cl, n_max)


@pytest.mark.parametrize("span", [1, 100])  # ids dense (an id table) or sparse (a search)
def test_id_index_finds_the_rows_a_plain_search_finds(span):
    from insitu.locality import IdIndex, Points

    rng = np.random.default_rng(3)
    ids = rng.permutation(5000 * span)[:3000] + 7
    index = IdIndex(ids)
    assert (index.table is not None) == (span == 1)
    wanted = np.concatenate([ids[rng.integers(0, 3000, 4000)],  # present, repeated
                             [-5, 0, 6, ids.max() + 1, 10 ** 12],  # outside the span
                             np.setdiff1d(np.arange(7, ids.max()), ids)[:500]])  # gaps
    rows, found = index.find(wanted)
    lookup = {int(i): r for r, i in enumerate(ids)}
    expected = np.array([lookup.get(int(w), -1) for w in wanted])
    assert np.array_equal(found, expected >= 0)
    assert np.array_equal(rows[found], expected[found]) and not rows[~found].any()
    assert index.distinct
    # Points keep one index of their centres' ids (the ghosts' are not in it)
    points = Points(np.zeros((3010, 3)), np.ones(3010), np.concatenate([ids, ids[:10]]), 3000)
    assert points.centre_index is points.centre_index and len(points.centre_index) == 3000


@pytest.mark.parametrize("span", [1, 100])
def test_id_index_with_repeated_ids_gives_the_first_row(span):
    from insitu.locality import IdIndex

    ids = np.array([5, 9, 5, 2, 9, 11]) * span
    index = IdIndex(ids)
    assert not index.distinct
    rows, found = index.find(np.array([9, 5, 2, 3]) * span)
    assert found.tolist() == [True, True, True, False]
    assert rows[:3].tolist() == [1, 0, 3]


@pytest.mark.parametrize("span", [1, 10 ** 6])  # an id table, or np.unique's sort
def test_unique_ids_are_numpy_unique(span):
    from insitu.locality import unique_ids

    rng = np.random.default_rng(span)
    for n in (0, 1, 7, 3000):
        ids = rng.integers(1, 2000, n) * span + rng.integers(0, 2, n)  # repeats
        distinct, first, inverse = unique_ids(ids)
        expected = np.unique(ids, return_index=True, return_inverse=True)
        assert np.array_equal(distinct, expected[0])
        # the first place of each id, and every id found again through the inverse
        assert np.array_equal(first, expected[1])
        assert np.array_equal(distinct[inverse], ids)


def test_present_types_are_numpy_unique():
    from insitu.locality import present_types

    rng = np.random.default_rng(5)
    for types in (rng.integers(1, 4, 1000), np.array([7, 7, 2]), np.zeros(0, np.int64),
                  np.array([-1, 3, 3]), np.array([1 << 20, 1])):
        assert np.array_equal(present_types(types), np.unique(types))


def test_points_within_reach_keep_every_point_a_centre_can_reach():
    from insitu.locality import Points

    rng = np.random.default_rng(11)
    centres = rng.uniform(0, 10, (300, 3)) * [1.0, 1.0, 0.5]  # a slab, as a rank's
    others = rng.uniform(-8, 18, (3000, 3))
    points = Points(np.concatenate([centres, others]), rng.integers(1, 3, 3300),
                    rng.permutation(3300) + 1, 300)
    reach = 3.0
    near = points.within_reach(reach)
    distance = np.linalg.norm(others[:, None] - centres[None], axis=2).min(axis=1)
    kept = np.isin(points.ids[300:], near.ids[near.n_centers:])
    assert near.n_centers == 300 and np.array_equal(near.ids[:300], points.ids[:300])
    assert kept[distance <= reach].all()  # nothing a centre reaches is lost
    assert kept.sum() < 0.6 * len(others)  # the far ghosts are gone
    order = np.flatnonzero(kept)  # kept in their order, with their types and positions
    assert np.array_equal(near.ids[300:], points.ids[300:][order])
    assert np.array_equal(near.types[300:], points.types[300:][order])
    assert np.array_equal(near.positions[300:], others[order])
    assert points.within_reach(100.0) is points  # nothing to drop
