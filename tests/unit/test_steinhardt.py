"""Steinhardt / LESS bond-orientational order: independent NumPy references (addition
theorem, explicit Legendre derivatives), invariances, metadata. The comparison with LAMMPS's
compute orientorder/atom is in tests/integration/test_steinhardt_lammps.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from periodic_reference import all_images
from uncertainty_structures import random_points

from insitu.descriptors import Steinhardt, descriptor_from_metadata, wigner3j
from insitu.descriptors.steinhardt_kernels import INVARIANT_BLOCK
from insitu.frame import Frame
from insitu.testing import (
    image_points,
    lattice,
    random_rotation,
    random_types,
    remove_fraction,
    replicate,
    thermal,
)

LS = (3, 4, 6, 8, 10, 12)


# ---------------------------------------------------------------------------------------
# independent references
def neighbour_vectors(frame: Frame, rmax: float):
    """Per atom: (vectors, atom indices) of all images within rmax, sorted by (d, id)."""
    pos, images, atom = all_images(frame, rmax)
    out = []
    for i in range(len(pos)):
        v = images - pos[i]
        d = np.linalg.norm(v, axis=1)
        sel = np.nonzero((d <= rmax) & (d > 1e-9))[0]
        o = sel[np.lexsort((frame.ids[atom[sel]], d[sel]))]
        out.append((v[o], atom[o]))
    return out


def select(vecs, n=None, cutoff=None, adaptive=None):
    d = np.linalg.norm(vecs, axis=1)
    if adaptive is not None:
        rc = adaptive * d[:n].mean()
        return np.nonzero(d <= rc)[0]
    k = len(d) if cutoff is None else int(np.sum(d <= cutoff))
    if n is not None:
        k = min(k, n)
    return np.arange(k)


def ql_addition(vecs, l):
    """q_l from the addition theorem: q_l^2 = 1/N^2 sum_jk P_l(u_j . u_k)."""
    if len(vecs) == 0:
        return 0.0
    u = vecs / np.linalg.norm(vecs, axis=1)[:, None]
    c = np.clip(u @ u.T, -1.0, 1.0)
    coef = np.zeros(l + 1)
    coef[l] = 1.0
    return float(np.sqrt(max(np.polynomial.legendre.legval(c, coef).sum(), 0.0))
                 / len(vecs))


def ylm_explicit(l, m, u):
    """Y_lm via P_l^m(x) = (-1)^m (1-x^2)^(m/2) d^m/dx^m P_l(x) (numpy Legendre series)."""
    from math import factorial, pi

    x = u[:, 2]
    phi = np.arctan2(u[:, 1], u[:, 0])
    am = abs(m)
    coef = np.zeros(l + 1)
    coef[l] = 1.0
    dpl = np.polynomial.legendre.legval(x, np.polynomial.legendre.legder(coef, am)) \
        if am else np.polynomial.legendre.legval(x, coef)
    plm = (-1) ** am * (1 - x * x) ** (am / 2) * dpl
    norm = np.sqrt((2 * l + 1) / (4 * pi) * factorial(l - am) / factorial(l + am))
    y = norm * plm * np.exp(1j * am * phi)
    if m < 0:
        y = (-1) ** am * np.conj(y)
    return y


def qlm_explicit(vecs, l):
    if len(vecs) == 0:
        return np.zeros(2 * l + 1, complex)
    u = vecs / np.linalg.norm(vecs, axis=1)[:, None]
    return np.array([ylm_explicit(l, m, u).mean() for m in range(-l, l + 1)])


def wl_hat_explicit(q, l):
    acc = 0.0
    for m1 in range(-l, l + 1):
        for m2 in range(-l, l + 1):
            m3 = -m1 - m2
            if abs(m3) <= l:
                acc += wigner3j(l, l, l, m1, m2, m3) * (q[m1 + l] * q[m2 + l] * q[m3 + l]).real
    return acc / np.sum(np.abs(q) ** 2) ** 1.5


def test_matches_addition_theorem_reference():
    f = random_types(thermal(lattice("fcc", 3.615, 3), 0.15, seed=22), [1, 2], seed=22)
    nb = neighbour_vectors(f, 6.0)
    cases = [dict(n_neighbors=12), dict(n_neighbors=8, cutoff=2.6),
             dict(n_neighbors=None, cutoff=3.1), dict(n_neighbors=12, adaptive_factor=1.2)]
    for kw in cases:
        st = Steinhardt(cross_species=True, min_neighbors=0, **kw)
        got = st.compute(f)
        assert got.shape == (len(f), 12)
        for i in range(len(f)):
            v, atoms = nb[i]
            sel = select(v, kw.get("n_neighbors"), kw.get("cutoff"), kw.get("adaptive_factor"))
            cross = sel[f.types[atoms[sel]] != f.types[i]]
            exp = [ql_addition(v[sel], l) for l in LS] + [ql_addition(v[cross], l) for l in LS]
            np.testing.assert_allclose(got[i], exp, atol=1e-10, err_msg=str(kw))


def test_cross_species_zero_for_single_species():
    f = thermal(lattice("bcc", 3.0, 3), 0.1, seed=23)
    got = Steinhardt(cross_species=True).compute(f)
    assert np.all(got[:, 6:] == 0.0) and np.all(got[:, :6] > 0)


def test_wl_and_averaged_match_explicit_ylm():
    f = random_types(thermal(lattice("bcc", 3.0, 3), 0.12, seed=24), [1, 2], seed=24)
    nb = neighbour_vectors(f, 6.0)
    st = Steinhardt(ls=(4, 6), n_neighbors=14, wl=True, averaged=True, cross_species=True)
    got = st.compute(f)
    assert st.feature_names == ["qbar4", "qbar6", "wbar4", "wbar6", "qbar4_cross",
                                "qbar6_cross", "wbar4_cross", "wbar6_cross"]
    sets = [nb[i][1][:14] for i in range(len(f))]
    for l_idx, l in enumerate((4, 6)):
        q = np.array([qlm_explicit(nb[i][0][:14], l) for i in range(len(f))])
        qx = []
        for i in range(len(f)):
            v, atoms = nb[i]
            keep = f.types[atoms[:14]] != f.types[i]
            qx.append(qlm_explicit(v[:14][keep], l))
        qx = np.array(qx)
        for i in range(len(f)):
            for block, arr in ((0, q), (4, qx)):
                avg = (arr[i] + arr[sets[i]].sum(axis=0)) / (len(sets[i]) + 1)
                qbar = np.sqrt(4 * np.pi / (2 * l + 1) * np.sum(np.abs(avg) ** 2))
                np.testing.assert_allclose(got[i, block + l_idx], qbar, atol=1e-10)
                np.testing.assert_allclose(got[i, block + 2 + l_idx], wl_hat_explicit(avg, l),
                                           atol=1e-9)
    # plain (non averaged) q_l from the explicit Y_lm agree with the addition theorem
    st = Steinhardt(ls=(4, 6), n_neighbors=14)
    q6 = [np.sqrt(4 * np.pi / 13 * np.sum(np.abs(qlm_explicit(nb[i][0][:14], 6)) ** 2))
          for i in range(len(f))]
    np.testing.assert_allclose(st.compute(f)[:, 1], q6, atol=1e-12)


def test_nearest_spread_matches_the_distances():
    """The r1 spread: std / mean of the nearest-neighbour distance over the atom and its 12
    nearest, from the sorted image distances; the q-bar / w-bar columns are those without
    it. Uniformly random points (no excluded volume) spread far more than a crystal near
    its melting point with half its atoms missing."""
    f = thermal(lattice("fcc", 3.6, 3), 0.15, seed=41)
    nb = neighbour_vectors(f, 6.0)
    r1 = np.array([np.linalg.norm(v[0]) for v, _ in nb])
    spread = np.array([np.std(r1[np.r_[i, nb[i][1][:12]]]) / np.mean(r1[np.r_[i, nb[i][1][:12]]])
                       for i in range(len(f))])
    st = Steinhardt(ls=(4, 6), n_neighbors=12, averaged=True, wl=True, nearest_spread=True)
    assert st.feature_names[-1] == "r1_spread" and st.n_features == 5
    got = st.compute(f)
    np.testing.assert_allclose(got[:, -1], spread, rtol=1e-9)
    without = Steinhardt(ls=(4, 6), n_neighbors=12, averaged=True, wl=True).compute(f)
    np.testing.assert_array_equal(got[:, :-1], without)
    random_spread = st.compute(random_points(1500, density=1500 / 30.0 ** 3, seed=3))[:, -1]
    hot_half = remove_fraction(thermal(lattice("fcc", 3.6, 5), 0.15, seed=42), 0.5, seed=42)
    crystal_spread = st.compute(hot_half)[:, -1]  # ~ T_m (0.26 A rms), half the atoms gone
    assert np.median(random_spread) > 0.25
    assert np.percentile(random_spread, 1) > np.percentile(crystal_spread, 99)
    for bad in (dict(cross_species=True, averaged=True), dict(averaged=False)):
        with pytest.raises(ValueError, match="nearest_spread"):
            Steinhardt(nearest_spread=True, **bad)
    assert "nearest_spread" not in Steinhardt().to_metadata()  # old fingerprints hold
    assert descriptor_from_metadata(st.to_metadata()).nearest_spread


def test_invariances_and_small_cell():
    f = random_types(thermal(lattice("fcc", 3.615, 3), 0.1, seed=25), [1, 2], seed=25)
    st = Steinhardt(cross_species=True, wl=True, averaged=True)
    st.chunk_size = 20
    base = st.compute(f)
    rot = random_rotation(6)
    fr = Frame(f.positions @ rot.T + 5.5, f.cell @ rot.T, f.pbc, f.types, f.ids)
    np.testing.assert_allclose(st.compute(fr), base, atol=1e-10)
    perm = np.random.default_rng(7).permutation(len(f))
    fp = Frame(f.positions[perm], f.cell, f.pbc, f.types[perm], f.ids[perm])
    np.testing.assert_allclose(st.compute(fp), base[perm], atol=1e-12)
    jumps = np.random.default_rng(8).integers(-2, 3, (len(f), 3))
    fs = Frame(f.positions + jumps @ f.cell, f.cell, f.pbc, f.types, f.ids)
    np.testing.assert_allclose(st.compute(fs), base, atol=1e-10)
    # 4-atom cell (box 3.6 A, far below the 5 A search radius) vs the crystal 3x3x3
    unit = random_types(thermal(lattice("fcc", 3.615, 1), 0.1, seed=26), [1, 2], seed=26)
    big = replicate(unit, (3, 3, 3))
    for s in (Steinhardt(cross_species=True, averaged=True, wl=True),
              Steinhardt(adaptive_factor=1.25), Steinhardt(n_neighbors=None, cutoff=4.2)):
        a = s.compute(unit)
        b = s.compute(big)
        np.testing.assert_allclose(b, np.tile(a, (27, 1)), atol=1e-10)


def test_open_mode_and_search_radius():
    f = random_types(thermal(lattice("fcc", 3.615, 3), 0.1, seed=27), [1, 2], seed=27)
    points = image_points(f)
    for st in (Steinhardt(cross_species=True, wl=True), Steinhardt(averaged=True),
               Steinhardt(adaptive_factor=1.2, n_neighbors=12)):
        np.testing.assert_allclose(st.compute(points), st.compute(f),
                                   atol=1e-12)
    assert Steinhardt(averaged=True).required_cutoff == 10.0
    assert Steinhardt(cutoff=3.0, n_neighbors=None).required_cutoff == 3.0
    # too few neighbours within search_cutoff: the centres use those they have (down to
    # min_neighbors, below which they are NaN = undescribed), the
    # same rule in open (in-situ) and periodic (offline) mode, and nothing raises
    short = Steinhardt(search_cutoff=2.4, min_neighbors=1)
    q_open = short.compute(points)
    np.testing.assert_allclose(q_open, short.compute(f), atol=1e-12)  # NaN at the same rows
    assert np.isfinite(q_open).any()
    assert np.nanmax(np.abs(q_open - Steinhardt().compute(f))) > 1e-3


def test_too_few_neighbours_is_nan():
    """A centre with fewer selected neighbours than min_neighbors (default 4) is not
    described: NaN features (unknown for the classifier); the others are finite."""
    f = thermal(lattice("bcc", 3.0, 3), 0.1, seed=28)
    f = Frame(np.vstack([f.positions, [[40.0, 40.0, 40.0]]]), np.eye(3) * 80.0, [True] * 3,
              np.ones(len(f) + 1, int))  # a crystallite and one isolated atom in a big box
    q = Steinhardt(n_neighbors=12, cutoff=3.0).compute(f)
    counts = np.array([np.sum(np.linalg.norm(f.positions - p, axis=1) <= 3.0) - 1
                       for p in f.positions])
    undescribed = np.isnan(q).all(axis=1)
    np.testing.assert_array_equal(undescribed, np.minimum(counts, 12) < 4)
    assert undescribed[-1] and not undescribed.all() and np.isfinite(q[~undescribed]).all()


def test_metadata_round_trip_and_validation():
    st = Steinhardt(ls=(4, 6, 8), n_neighbors=10, cross_species=True, adaptive_factor=1.3,
                    search_cutoff=6.0, averaged=True, wl=True)
    meta = json.loads(json.dumps(st.to_metadata()))
    assert meta["kind"] == "steinhardt"
    st2 = descriptor_from_metadata(meta)
    assert isinstance(st2, Steinhardt) and st2.to_metadata() == st.to_metadata()
    assert st2.feature_shape == (12,)
    assert Steinhardt().feature_shape == (6,) and Steinhardt(cross_species=True).n_features == 12
    with pytest.raises(ValueError):
        Steinhardt(n_neighbors=None, cutoff=None)
    with pytest.raises(ValueError):
        Steinhardt(cutoff=3.0, adaptive_factor=1.2)
    with pytest.raises(ValueError, match="unknown descriptor kind"):
        descriptor_from_metadata({"kind": "soap"})


def test_wigner3j_known_values():
    assert abs(wigner3j(2, 2, 2, 0, 0, 0) - (-np.sqrt(2.0 / 35.0))) < 1e-14
    assert abs(wigner3j(1, 1, 0, 1, -1, 0) - 1.0 / np.sqrt(3.0)) < 1e-14
    assert wigner3j(3, 3, 3, 0, 0, 0) == 0.0



def test_wl_kernel_matches_the_full_sum():
    """One term per class of permuted / mirrored triples gives the full sum of
    wl_hat_explicit on arbitrary q_lm (150 rows: two whole blocks of the kernel and a
    part of one); odd l give exactly 0."""
    st = Steinhardt(ls=(3, 4, 5, 6, 8, 10, 12), wl=True)
    rng = np.random.default_rng(7)
    qre, qim = rng.normal(size=(2, 150, st._nlm))
    assert 2 * INVARIANT_BLOCK < len(qre) < 3 * INVARIANT_BLOCK
    offset = 0
    for l in st.ls:
        qim[:, offset] = 0.0  # q_l0 is real
        offset += l + 1
    got = st._invariants(qre, qim)
    offset = 0
    for k, l in enumerate(st.ls):
        q = qre[:, offset:offset + l + 1] + 1j * qim[:, offset:offset + l + 1]
        sign = np.where(np.arange(1, l + 1) % 2 == 1, -1.0, 1.0)
        full = np.concatenate([(np.conj(q[:, 1:]) * sign)[:, ::-1], q], axis=1)  # -l..l
        ref = [wl_hat_explicit(row, l) for row in full]
        np.testing.assert_allclose(got[:, len(st.ls) + k], ref, rtol=0, atol=1e-14)
        if l % 2:
            assert np.all(got[:, len(st.ls) + k] == 0.0)
        else:
            assert np.abs(ref).max() > 0.01
        offset += l + 1


# ---------------------------------------------------------------------------------------
# in situ: q-bar reads its ghost neighbours' q_lm from their owners (halo exchange)
def slab_rank(frame: Frame, ghost_angstrom: float, x_max: float):
    """An MPI rank's points: the atoms with x < x_max are its own, every other atom and
    image within ``ghost_angstrom`` of that slab is a ghost (no periodic image of its own
    atoms is left out: they carry the ids of centres)."""
    from insitu.locality import Points

    points = frame.to_points(ghost_angstrom + x_max)
    x = points.positions[:, 0]
    mine = np.flatnonzero((np.arange(len(x)) < len(frame)) & (x < x_max))
    ghosts = np.flatnonzero((x > -ghost_angstrom) & (x < x_max + ghost_angstrom))
    ghosts = np.setdiff1d(ghosts, mine)
    order = np.concatenate([mine, ghosts])
    return Points(points.positions[order], points.types[order], points.ids[order], len(mine))


def reference_qlm(frame: Frame, ls, n_neighbors: int):
    """q_lm (m >= 0, per l, as the kernels store them) of every atom from the explicit Y_lm:
    what the owner of a ghost computes for its own atom."""
    nb = neighbour_vectors(frame, 6.0)
    q = np.array([np.concatenate([qlm_explicit(nb[i][0][:n_neighbors], l)[l:] for l in ls])
                  for i in range(len(frame))])
    return q.real.copy(), q.imag.copy()


def test_averaged_reads_ghost_qlm_from_an_exchange():
    """A rank whose ghosts reach only the search radius (+ margin), not twice it: with the
    owners' q_lm (here the explicit reference) its q-bar / w-bar equal the whole frame's;
    without an exchange the centres at the slab's faces read incomplete ghost environments;
    a ghost the exchange misses leaves the centres that read it undescribed, no other."""
    frame = thermal(lattice("fcc", 3.52, 5), 0.2, seed=31)
    st = Steinhardt(ls=(4, 6), n_neighbors=12, search_cutoff=4.0, averaged=True, wl=True)
    assert st.exchange_cutoff == 4.0 and st.required_cutoff == 8.0
    whole = st.compute(frame)
    rank = slab_rank(frame, 4.5, 9.0)
    mine = rank.ids[:rank.n_centers] - 1  # frame ids are 1..N in order
    qre, qim = reference_qlm(frame, (4, 6), 12)
    asked = []

    def exchange(needed, needed_positions, ids, *blocks, have=True, into=None):
        assert len(blocks) == 2 and blocks[0].shape == (rank.n_centers, 5 + 7)
        assert not np.isin(needed, ids).any(), "images of own atoms are not asked for"
        for i, x in zip(needed, needed_positions):  # a ghost's position (of one image)
            assert np.abs(rank.positions[rank.ids == i] - x).sum(axis=1).min() == 0.0
        asked.append(needed)
        found, values = np.full(len(needed), have), (qre[needed - 1], qim[needed - 1])
        if into is None:
            return found, *values
        for destination, value in zip(into[0], values):  # as the halo writes in place
            destination[into[1][found]] = value[found]
        return found, *into[0]

    got = st.compute(rank, exchange=exchange)
    np.testing.assert_allclose(got, whole[mine], atol=1e-10)
    assert len(asked) == 1 and len(asked[0]) > 0
    alone = st.compute(rank)
    assert not np.allclose(alone, whole[mine], atol=1e-6)
    missing = st.compute(rank, exchange=lambda *a, **k: exchange(*a, have=False, **k))
    nb = neighbour_vectors(frame, 6.0)
    foreign = set(asked[0].tolist())
    reads = np.array([any(frame.ids[j] in foreign for j in nb[i][1][:12]) for i in mine])
    assert reads.any() and not reads.all()
    assert np.isnan(missing[reads]).all()
    np.testing.assert_allclose(missing[~reads], whole[mine][~reads], atol=1e-10)


def test_exchange_is_collective_without_centres_and_refuses_repeated_ids():
    frame = thermal(lattice("fcc", 3.52, 4), 0.1, seed=32)
    st = Steinhardt(ls=(6,), search_cutoff=4.0, averaged=True)
    calls = []

    def exchange(needed, needed_positions, ids, *blocks, into=None):
        calls.append(len(needed))
        if into is not None:
            return (np.zeros(len(needed), bool), *into[0])
        return (np.zeros(len(needed), bool), *(np.zeros((len(needed),) + b.shape[1:])
                                              for b in blocks))

    rank = slab_rank(frame, 4.5, 7.0)
    empty = type(rank)(rank.positions, rank.types, rank.ids, 0)  # a rank without atoms
    assert st.compute(empty, exchange=exchange).shape == (0, 1) and calls == [0]
    repeated = type(rank)(rank.positions, rank.types, np.ones_like(rank.ids), rank.n_centers)
    with pytest.raises(ValueError, match="distinct global atom ids"):
        st.compute(repeated, exchange=exchange)
    assert calls == [0, 0], "the collective call comes before the error"
    # offline, repeated ids only cost the image shortcut: each point computes its own
    np.testing.assert_allclose(st.compute(repeated), st.compute(rank), atol=1e-12)
