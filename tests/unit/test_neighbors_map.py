"""Neighbors Map: equality with a plain NumPy transcription of the paper's equations,
invariances, small periodic cells, channels and metadata."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from periodic_reference import all_images

from insitu.descriptors import NeighborsMap, descriptor_from_metadata
from insitu.frame import Frame
from insitu.testing import (
    image_points,
    lattice,
    random_rotation,
    random_types,
    replicate,
    thermal,
)


def reference_nm(frame: Frame, rc: float, n_g: int = 32, gamma: float = 2.0,
                 beta: float = 3.0, weights=None) -> np.ndarray:
    """Allera et al. eqs. (1)-(3), written directly with NumPy (no code shared).

    v(j) = {i : r_ji <= rc} over all periodic images; nodes sorted by distance (ties by id);
    M[1, k] = w0 wk / r_0k^gamma; M[l+1, k] = r_0l^-beta w_l w_lk / r_l;k^gamma where
    r_l;k is the k-th smallest distance from node l to the other nodes of G_j.
    """
    weights = [None] if weights is None else weights
    pos, images, img_atom = all_images(frame, rc)
    n = len(pos)
    out = np.zeros((n, len(weights), n_g, n_g))
    for j in range(n):
        d = np.linalg.norm(images - pos[j], axis=1)
        sel = np.nonzero((d <= rc) & (d > 1e-9))[0]
        order = np.lexsort((frame.ids[img_atom[sel]], d[sel]))
        nodes = np.vstack([pos[j], images[sel[order]]])
        atoms = np.concatenate([[j], img_atom[sel[order]]])
        ids = frame.ids[atoms]
        types = frame.types[atoms]
        m = len(nodes) - 1
        dist = np.linalg.norm(nodes[:, None] - nodes[None], axis=2)
        for ch, w in enumerate(weights):
            wn = np.ones(m + 1) if w is None else np.array([w[int(t)] for t in types])
            for k in range(1, min(n_g, m) + 1):
                out[j, ch, 0, k - 1] = wn[0] * wn[k] / dist[0, k] ** gamma
            for l in range(1, min(n_g - 1, m) + 1):
                others = [k for k in range(m + 1) if k != l]
                o = sorted(others, key=lambda k: (dist[l, k], ids[k], k))[:n_g]
                g = 1.0 / dist[0, l] ** beta
                for q, k in enumerate(o):
                    out[j, ch, l, q] = g * wn[l] * wn[k] / dist[l, k] ** gamma
    return out.astype(np.float32)


def _rel(a, b):
    return np.abs(a.astype(np.float64) - b.astype(np.float64)).max() / np.abs(b).max()


@pytest.mark.parametrize("n_g,rc", [(32, 4.8), (16, 4.0), (32, 3.0)])
def test_equals_numpy_reference_one_channel(n_g, rc):
    f = thermal(lattice("fcc", 3.615, 3), 0.1, seed=11)
    got = NeighborsMap(rc, n_grid=n_g, min_neighbors=1).compute(f)
    ref = reference_nm(f, rc, n_g)
    assert got.dtype == np.float32 and got.shape == (len(f), 1, n_g, n_g)
    assert _rel(got, ref) < 1e-5
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7 * np.abs(ref).max())
    if rc == 3.0:  # 12 neighbours only: zero padding right and bottom
        assert np.all(got[:, :, :, 13:] == 0) and np.all(got[:, :, 13:, :] == 0)


@pytest.mark.parametrize("cw", [None, [{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}]])
def test_float32_output_is_the_rounded_exact_value(cw):
    """1/d^2 comes from a float32 reciprocal refined by a Newton step in float64 (relative
    error ~1e-14), so each pixel is the float64 value rounded to float32: within 1 ulp of
    the reference (an unrefined float32 reciprocal is off by several ulp)."""
    f = random_types(thermal(lattice("fcc", 3.615, 3), 0.1, seed=21), [1, 2], seed=21)
    got = NeighborsMap(4.8, channel_weights=cw).compute(f)
    ref = reference_nm(f, 4.8, weights=cw)
    nonzero = ref != 0
    np.testing.assert_array_equal(got == 0, ~nonzero)
    np.testing.assert_array_max_ulp(got[nonzero], ref[nonzero], maxulp=1)


def test_equals_numpy_reference_two_channels_and_triclinic():
    f = random_types(thermal(lattice("fcc", 3.615, 3), 0.1, seed=12), [1, 2], seed=12)
    cw = [{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}]
    got = NeighborsMap(4.6, channel_weights=cw).compute(f)
    ref = reference_nm(f, 4.6, weights=cw)
    assert got.shape == (len(f), 2, 32, 32)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7 * np.abs(ref).max())
    # channel 1 is geometric
    np.testing.assert_allclose(got[:, 0], NeighborsMap(4.6).compute(f)[:, 0], rtol=1e-6)
    # triclinic cell, non-trivial gamma / beta
    rng = np.random.default_rng(13)
    cell = np.array([[7.5, 0.0, 0.0], [2.0, 7.0, 0.0], [1.0, -1.5, 8.0]])
    pos = rng.random((36, 3)) @ cell
    keep = [0]
    for i in range(1, len(pos)):  # crude hard-core so that the graph is not degenerate
        dd = pos[keep] - pos[i]
        if np.min(np.linalg.norm(dd, axis=1)) > 1.2:
            keep.append(i)
    ft = Frame(pos[keep], cell, [True] * 3, rng.integers(1, 3, len(keep)))
    got = NeighborsMap(5.5, n_grid=16, gamma=1.5, beta=1.0 / 3.0, channel_weights=cw).compute(ft)
    ref = reference_nm(ft, 5.5, 16, 1.5, 1.0 / 3.0, weights=cw)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7 * np.abs(ref).max())


def test_too_few_neighbours_is_nan():
    """Fewer than min_neighbors (default n_grid // 2) within the cutoff: the environment is
    not described (NaN map, reported unknown by the classifier); the others are finite."""
    f = thermal(lattice("fcc", 3.615, 3), 0.1, seed=21)
    f = Frame(np.vstack([f.positions, [[40.0, 40.0, 40.0]]]), np.eye(3) * 80.0, [True] * 3,
              np.ones(len(f) + 1, int))  # a crystallite and one isolated atom in a big box
    x = NeighborsMap(4.8).compute(f)
    counts = np.array([np.sum(np.linalg.norm(f.positions - p, axis=1) <= 4.8) - 1
                       for p in f.positions])
    undescribed = np.isnan(x).all(axis=(1, 2, 3))
    np.testing.assert_array_equal(undescribed, counts < 16)
    assert undescribed[-1] and not undescribed.all() and np.isfinite(x[~undescribed]).all()
    assert not np.isnan(NeighborsMap(4.8, min_neighbors=0).compute(f)).any()


def test_invariances():
    f = random_types(thermal(lattice("fcc", 3.615, 4), 0.1, seed=14), [1, 2], seed=14)
    cw = [{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}]
    nm = NeighborsMap(4.8, channel_weights=cw)
    nm.chunk_size = 50
    base = nm.compute(f)
    # rotation (cell rotated too) and translation
    rot = random_rotation(1)
    fr = Frame(f.positions @ rot.T + np.array([3.1, -7.2, 0.4]), f.cell @ rot.T, f.pbc,
               f.types, f.ids)
    np.testing.assert_allclose(nm.compute(fr), base, rtol=2e-6, atol=1e-9)
    # permutation of the atoms (ids travel with the atoms)
    perm = np.random.default_rng(2).permutation(len(f))
    fp = Frame(f.positions[perm], f.cell, f.pbc, f.types[perm], f.ids[perm])
    np.testing.assert_allclose(nm.compute(fp), base[perm], rtol=1e-6, atol=1e-9)
    # periodic shifts of single atoms by lattice vectors
    jumps = np.random.default_rng(3).integers(-2, 3, (len(f), 3))
    fs = Frame(f.positions + jumps @ f.cell, f.cell, f.pbc, f.types, f.ids)
    np.testing.assert_allclose(nm.compute(fs), base, rtol=1e-6, atol=1e-9)


def test_perfect_crystal_ties_do_not_depend_on_order():
    # many exactly equal distances: the id tie-break makes the 2-channel image independent
    # of the atom order and of rotations
    f = random_types(lattice("bcc", 3.0, 4), [1, 2], seed=15)
    cw = [{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}]
    nm = NeighborsMap(5.0, channel_weights=cw)
    base = nm.compute(f)
    perm = np.random.default_rng(4).permutation(len(f))
    rot = random_rotation(5)
    fp = Frame(f.positions[perm] @ rot.T, f.cell @ rot.T, f.pbc, f.types[perm], f.ids[perm])
    np.testing.assert_allclose(nm.compute(fp), base[perm], rtol=1e-6, atol=1e-9)


def test_small_cell_equals_replicated():
    # 2x2x2 fcc cell (7.2 A) with cutoff 4.8 > half the box, vs the same crystal 3x3x3
    small = random_types(thermal(lattice("fcc", 3.615, 2), 0.1, seed=16), [1, 2], seed=16)
    big = replicate(small, (3, 3, 3))
    cw = [{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}]
    nm = NeighborsMap(4.8, channel_weights=cw)
    a = nm.compute(small)
    b = nm.compute(big)
    for k in range(27):
        np.testing.assert_allclose(b[k * len(small):(k + 1) * len(small)], a, rtol=1e-6,
                                   atol=1e-9)
    # triclinic: 3x3x3 primitive fcc cells (heights 6.26 A < 2 x 4.8 A), thermal
    a = 3.615
    prim = 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    grid = np.array(list(itertools.product(range(3), repeat=3)), float)
    rng = np.random.default_rng(17)
    tri = Frame(grid @ prim + rng.normal(0, 0.1, (27, 3)), 3 * prim, [True] * 3,
                rng.integers(1, 3, 27))
    big = replicate(tri, (3, 3, 3))
    a_ = nm.compute(tri)
    b = nm.compute(big)
    for k in range(27):
        np.testing.assert_allclose(b[27 * k:27 * k + 27], a_, rtol=1e-6, atol=1e-9)
    # NB: with a cutoff longer than a box vector, a centre's own images at +a and -a are
    # exactly equidistant and share its id, so their order (hence the rows) is a
    # convention that a replicated cell, where they are distinct atoms, need not follow.


def test_chunking_and_iterators_agree():
    f = thermal(lattice("fcc", 3.615, 3), 0.1, seed=18)
    nm = NeighborsMap(4.8)
    nm.chunk_size = 10
    full = nm.compute(f)
    got = np.concatenate([x for _, _, x in nm.iter_compute(f, chunk_size=23)])
    np.testing.assert_array_equal(got, full)
    big = NeighborsMap(4.8)
    big.chunk_size = 100000
    assert big.compute(f).tobytes() == full.tobytes()


def test_channel_weights_errors_and_metadata():
    f = random_types(thermal(lattice("fcc", 3.615, 2), 0.05, seed=19), [1, 2], seed=19)
    nm = NeighborsMap(4.8, channel_weights=[{1: 1.0, 2: 1.0}, {1: 1.0}])
    with pytest.raises(ValueError, match="type 2.*channel 2"):
        nm.compute(f)
    with pytest.raises(ValueError, match="type 3"):
        NeighborsMap(4.8, channel_weights=[{1: 1.0, 2: 1.0}]).check_types([1, 2, 3])
    NeighborsMap(4.8).check_types([1, 2, 7])  # geometric channel takes any type
    nm = NeighborsMap(5.1, n_grid=16, gamma=1.0, beta=1 / 3,
                      channel_weights=[{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}])
    meta = json.loads(json.dumps(nm.to_metadata()))
    assert meta["kind"] == "neighbors_map"
    nm2 = descriptor_from_metadata(meta)
    assert isinstance(nm2, NeighborsMap)
    assert nm2.to_metadata() == nm.to_metadata()
    assert nm2.feature_shape == (2, 16, 16) and nm2.required_cutoff == 5.1
    np.testing.assert_array_equal(nm2.compute(f), nm.compute(f))


def test_open_mode_equals_periodic_mode():
    f = random_types(thermal(lattice("fcc", 3.615, 3), 0.1, seed=20), [1, 2], seed=20)
    cw = [{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}]
    nm = NeighborsMap(4.8, channel_weights=cw)
    base = nm.compute(f)
    # local atoms = all atoms, ghosts = explicit images within the required cutoff
    points = image_points(f)
    got = nm.compute(points)
    np.testing.assert_allclose(got, base, rtol=1e-6, atol=1e-9)
    parts = list(nm.iter_compute(points, chunk_size=31))
    assert parts[0][:2] == (0, 31)
    np.testing.assert_array_equal(np.concatenate([p[2] for p in parts]), got)
