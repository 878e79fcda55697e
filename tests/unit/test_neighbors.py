"""Neighbour search: periodic (orthogonal, triclinic, cutoff > half box) and open modes,
checked against brute-force enumeration of periodic images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from insitu.frame import Frame
from insitu.neighbors import CellList, NeighborList

# ---------------------------------------------------------------------------------------
# crystal builders shared by the descriptor tests (imported from this module)
BASES = {
    "fcc": np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
    "bcc": np.array([[0, 0, 0], [0.5, 0.5, 0.5]]),
    "sc": np.array([[0, 0, 0]]),
}


def crystal(kind: str, n, a: float, noise: float = 0.0, seed: int = 0, types=None) -> Frame:
    """Cubic supercell n (int or 3-tuple) of fcc/bcc/sc, or an orthorhombic hcp cell."""
    n = (n, n, n) if np.isscalar(n) else tuple(n)
    if kind == "hcp":
        c = a * np.sqrt(8.0 / 3.0)
        # orthorhombic cell (a, sqrt(3) a, c) with 4 atoms
        base = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 5.0 / 6.0, 0.5], [0.0, 1.0 / 3.0, 0.5]])
        lat = np.array([a, np.sqrt(3.0) * a, c])
    else:
        base = BASES[kind]
        lat = np.array([a, a, a])
    grid = np.array(list(itertools.product(*[range(k) for k in n])), dtype=float)
    frac = (grid[:, None, :] + base[None]).reshape(-1, 3)
    pos = frac * lat
    rng = np.random.default_rng(seed)
    if noise:
        pos = pos + rng.normal(0.0, noise, pos.shape)
    cell = np.diag(lat * np.array(n))
    if types is None:
        t = np.ones(len(pos), int)
    else:
        t = rng.choice(np.asarray(types), size=len(pos))
    return Frame(pos, cell, [True] * 3, t)


def replicate(frame: Frame, reps=(3, 3, 3)) -> Frame:
    """Explicit supercell; atom i of copy (0,0,0) keeps index i, ids are fresh."""
    shifts = np.array(list(itertools.product(*[range(r) for r in reps])), dtype=float)
    pos = (frame.positions[None] + (shifts @ frame.cell)[:, None]).reshape(-1, 3)
    types = np.tile(frame.types, len(shifts))
    cell = frame.cell * np.asarray(reps)[:, None]
    return Frame(pos, cell, frame.pbc, types)


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


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
    f = crystal("fcc", 3, 3.615, noise=0.1, seed=1)
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
    f = crystal("fcc", 1, 3.6, noise=0.05, seed=3)
    cl = CellList.periodic(f.positions, f.cell, f.pbc, f.ids, 5.0)
    nl = cl.query()
    _check_against_brute(f, 5.0, nl)
    assert 0 in nl.index[nl.offsets[0]:nl.offsets[1]]  # own images
    assert np.all(np.diff(nl.offsets) == 42)  # 12 + 6 + 24 fcc neighbours, 4 atoms


def test_atoms_outside_cell_are_wrapped():
    f = crystal("bcc", 3, 3.0, noise=0.05, seed=4)
    jumps = np.random.default_rng(4).integers(-3, 4, (len(f), 3))
    shifted = Frame(f.positions + jumps @ f.cell, f.cell, f.pbc, f.types)
    nl1 = CellList.periodic(f.positions, f.cell, f.pbc, f.ids, 4.5).query()
    nl2 = CellList.periodic(shifted.positions, f.cell, f.pbc, f.ids, 4.5).query()
    np.testing.assert_array_equal(nl1.offsets, nl2.offsets)
    np.testing.assert_array_equal(nl1.index, nl2.index)
    np.testing.assert_allclose(nl1.vectors, nl2.vectors, atol=1e-10)


def test_non_periodic_direction_is_open():
    f = crystal("sc", 4, 2.5, noise=0.02, seed=5)
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
    f = crystal("fcc", 3, 3.615)
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
