"""Steinhardt / LESS bond-orientational order: independent NumPy references (addition
theorem, explicit Legendre derivatives), LAMMPS compute orientorder/atom, invariances."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from lammps_helpers import run_lammps
from test_neighbors import crystal, random_rotation, replicate

from insitu.descriptors import descriptor_from_metadata
from insitu.frame import Frame
from insitu.steinhardt import Steinhardt, wigner3j

LS = (3, 4, 6, 8, 10, 12)


# ---------------------------------------------------------------------------------------
# independent references
def neighbour_vectors(frame: Frame, rmax: float):
    """Per atom: (vectors, atom indices) of all images within rmax, sorted by (d, id)."""
    cell = frame.cell
    frac = frame.positions @ np.linalg.inv(cell)
    frac -= np.floor(frac)
    pos = frac @ cell
    vol = abs(np.linalg.det(cell))
    reach = [int(np.ceil(rmax / (vol / np.linalg.norm(np.cross(cell[(d + 1) % 3],
                                                                cell[(d + 2) % 3]))))) + 1
             for d in range(3)]
    shifts = np.array(list(itertools.product(*[range(-k, k + 1) for k in reach])), float)
    images = (pos[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
    atom = np.tile(np.arange(len(pos)), len(shifts))
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


# ---------------------------------------------------------------------------------------
# LAMMPS compute orientorder/atom
def lammps_orientorder(frame: Frame, tmp_path, nnn, cutoff, ls=LS, wl_hat=False):
    cell = frame.cell
    frac = frame.positions @ np.linalg.inv(cell)
    frac -= np.floor(frac)
    pos = (frac @ cell).tolist()
    cell = cell.tolist()
    lines = ["insitu test\n", f"{len(pos)} atoms", f"{int(frame.types.max())} atom types",
             f"0 {cell[0][0]!r} xlo xhi", f"0 {cell[1][1]!r} ylo yhi",
             f"0 {cell[2][2]!r} zlo zhi", f"{cell[1][0]!r} {cell[2][0]!r} {cell[2][1]!r} xy xz yz",
             "", "Atoms # atomic", ""]
    for i, (p, t) in enumerate(zip(pos, frame.types)):
        lines.append(f"{int(frame.ids[i])} {int(t)} {p[0]!r} {p[1]!r} {p[2]!r}")
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data.lmp").write_text("\n".join(lines) + "\n")
    nnn_s = "NULL" if nnn is None else str(nnn)
    degrees = f"{len(ls)} {' '.join(map(str, ls))}"
    wlh = "yes" if wl_hat else "no"
    script = f"""
units metal
atom_style atomic
boundary p p p
read_data data.lmp
mass * 63.5
pair_style zero {cutoff + 0.5}
pair_coeff * *
neighbor 0.5 bin
compute q all orientorder/atom degrees {degrees} nnn {nnn_s} cutoff {cutoff} wl/hat {wlh}
dump d all custom 1 q.dump id c_q[*]
dump_modify d sort id format float %.17g
run 0
"""
    run_lammps(script, tmp_path, 1, timeout=120)
    rows = (tmp_path / "q.dump").read_text().splitlines()
    k = rows.index(next(r for r in rows if r.startswith("ITEM: ATOMS")))
    data = np.array([list(map(float, r.split())) for r in rows[k + 1:]])
    ids = data[:, 0].astype(np.int64)
    order = np.argsort(np.argsort(frame.ids))  # dump sorted by id -> frame order
    assert np.array_equal(ids[order], frame.ids)
    return data[order, 1:]


IDEAL = {  # kind, lattice, nnn, cutoff (between shells), literature q4, q6
    "fcc": ("fcc", 3.615, 12, 3.0, 0.19094, 0.57452),
    "bcc8": ("bcc", 3.0, 8, 2.8, 0.50918, 0.62854),
    "bcc14": ("bcc", 3.0, 14, 3.5, 0.03637, 0.51069),
    "hcp": ("hcp", 2.556, 12, 3.0, 0.09722, 0.48476),
    "sc": ("sc", 2.5, 6, 3.0, 0.76376, 0.35355),
}


@pytest.mark.parametrize("name", list(IDEAL))
def test_ideal_crystals_match_lammps(name, tmp_path):
    kind, a, nnn, rc, q4, q6 = IDEAL[name]
    f = crystal(kind, 3, a)
    st = Steinhardt(ls=(4, 6), n_neighbors=nnn)
    got = st.compute(f)
    lmp = lammps_orientorder(f, tmp_path, nnn, rc + 1.0, ls=(4, 6))
    np.testing.assert_allclose(got, lmp, atol=1e-9)
    np.testing.assert_allclose(got[:, 0], q4, atol=5e-5)
    np.testing.assert_allclose(got[:, 1], q6, atol=5e-5)
    # same values when the neighbours are chosen by the cutoff between shells
    np.testing.assert_allclose(Steinhardt(ls=(4, 6), n_neighbors=None, cutoff=rc).compute(f),
                               got, atol=1e-12)


def test_thermal_per_atom_matches_lammps(tmp_path):
    f = crystal("fcc", 4, 3.615, noise=0.12, seed=21)
    st = Steinhardt(wl=True)
    got = st.compute(f)
    lmp = lammps_orientorder(f, tmp_path, 12, 4.0, wl_hat=True)
    assert got.shape == lmp.shape == (len(f), 12)
    np.testing.assert_allclose(got[:, :6], lmp[:, :6], atol=1e-6, rtol=0)
    np.testing.assert_allclose(got[:, 6:], lmp[:, 6:], atol=1e-6, rtol=0)
    assert np.abs(got[:, :6] - lmp[:, :6]).max() < 1e-10


def test_matches_addition_theorem_reference():
    f = crystal("fcc", 3, 3.615, noise=0.15, seed=22, types=[1, 2])
    nb = neighbour_vectors(f, 6.0)
    cases = [dict(n_neighbors=12), dict(n_neighbors=8, cutoff=2.6),
             dict(n_neighbors=None, cutoff=3.1), dict(n_neighbors=12, adaptive_factor=1.2)]
    for kw in cases:
        st = Steinhardt(cross_species=True, **kw)
        got = st.compute(f)
        assert got.shape == (len(f), 12)
        for i in range(len(f)):
            v, atoms = nb[i]
            sel = select(v, kw.get("n_neighbors"), kw.get("cutoff"), kw.get("adaptive_factor"))
            cross = sel[f.types[atoms[sel]] != f.types[i]]
            exp = [ql_addition(v[sel], l) for l in LS] + [ql_addition(v[cross], l) for l in LS]
            np.testing.assert_allclose(got[i], exp, atol=1e-10, err_msg=str(kw))


def test_cross_species_zero_for_single_species():
    f = crystal("bcc", 3, 3.0, noise=0.1, seed=23)
    got = Steinhardt(cross_species=True).compute(f)
    assert np.all(got[:, 6:] == 0.0) and np.all(got[:, :6] > 0)


def test_wl_and_averaged_match_explicit_ylm():
    f = crystal("bcc", 3, 3.0, noise=0.12, seed=24, types=[1, 2])
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


def test_invariances_and_small_cell():
    f = crystal("fcc", 3, 3.615, noise=0.1, seed=25, types=[1, 2])
    st = Steinhardt(cross_species=True, wl=True, averaged=True, chunk_size=20)
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
    unit = crystal("fcc", 1, 3.615, noise=0.1, seed=26, types=[1, 2])
    big = replicate(unit, (3, 3, 3))
    for s in (Steinhardt(cross_species=True, averaged=True, wl=True),
              Steinhardt(adaptive_factor=1.25), Steinhardt(n_neighbors=None, cutoff=4.2)):
        a = s.compute(unit)
        b = s.compute(big)
        np.testing.assert_allclose(b, np.tile(a, (27, 1)), atol=1e-10)


def test_open_mode_and_search_radius():
    f = crystal("fcc", 3, 3.615, noise=0.1, seed=27, types=[1, 2])
    shifts = np.array([s for s in itertools.product((-1, 0, 1), repeat=3) if any(s)], float)
    ghosts = (f.positions[None] + (shifts @ f.cell)[:, None]).reshape(-1, 3)
    gidx = np.tile(np.arange(len(f)), len(shifts))
    pts = np.vstack([f.positions, ghosts])
    types = np.concatenate([f.types, f.types[gidx]])
    ids = np.concatenate([f.ids, f.ids[gidx]])
    for st in (Steinhardt(cross_species=True, wl=True), Steinhardt(averaged=True),
               Steinhardt(adaptive_factor=1.2, n_neighbors=12)):
        np.testing.assert_allclose(st.compute_open(pts, types, ids, len(f)), st.compute(f),
                                   atol=1e-12)
    assert Steinhardt(averaged=True).required_cutoff == 10.0
    assert Steinhardt(cutoff=3.0, n_neighbors=None).required_cutoff == 3.0
    # too few neighbours within search_cutoff: the centres use those they have, the
    # same rule in open (in-situ) and periodic (offline) mode, and nothing raises
    short = Steinhardt(search_cutoff=2.4)
    q_open = short.compute_open(pts, types, ids, len(f))
    np.testing.assert_allclose(q_open, short.compute(f), atol=1e-12)
    assert np.abs(q_open - Steinhardt().compute(f)).max() > 1e-3


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
