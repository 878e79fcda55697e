"""Steinhardt q_l / w_l-hat per atom equal LAMMPS's compute orientorder/atom (real lmp)."""

from __future__ import annotations

import numpy as np
import pytest
from lammps_helpers import run_lammps

from insitu.descriptors import Steinhardt
from insitu.frame import Frame
from insitu.io.lammps_data import read_lammps_data
from insitu.testing import lattice, thermal, write_data

LS = (3, 4, 6, 8, 10, 12)


def lammps_orientorder(frame: Frame, workdir, nnn, cutoff, ls=LS, wl_hat=False):
    """``(frame as LAMMPS read it, per-atom values of compute orientorder/atom)``: the
    frame is written as a data file and read back, so both sides see the same positions."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_data(workdir / "data.lmp", frame)
    frame = read_lammps_data(workdir / "data.lmp")
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
    run_lammps(script, workdir, 1, timeout=120)
    rows = (workdir / "q.dump").read_text().splitlines()
    k = rows.index(next(r for r in rows if r.startswith("ITEM: ATOMS")))
    data = np.array([list(map(float, r.split())) for r in rows[k + 1:]])
    ids = data[:, 0].astype(np.int64)
    order = np.argsort(np.argsort(frame.ids))  # dump sorted by id -> frame order
    assert np.array_equal(ids[order], frame.ids)
    return frame, data[order, 1:]


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
    f, lmp = lammps_orientorder(lattice(kind, a, 3), tmp_path, nnn, rc + 1.0, ls=(4, 6))
    st = Steinhardt(ls=(4, 6), n_neighbors=nnn)
    got = st.compute(f)
    np.testing.assert_allclose(got, lmp, atol=1e-9)
    np.testing.assert_allclose(got[:, 0], q4, atol=5e-5)
    np.testing.assert_allclose(got[:, 1], q6, atol=5e-5)
    # same values when the neighbours are chosen by the cutoff between shells
    np.testing.assert_allclose(Steinhardt(ls=(4, 6), n_neighbors=None, cutoff=rc).compute(f),
                               got, atol=1e-12)


def test_thermal_per_atom_matches_lammps(tmp_path):
    f, lmp = lammps_orientorder(thermal(lattice("fcc", 3.615, 4), 0.12, seed=21), tmp_path,
                                12, 4.0, wl_hat=True)
    got = Steinhardt(wl=True).compute(f)
    assert got.shape == lmp.shape == (len(f), 12)
    np.testing.assert_allclose(got[:, :6], lmp[:, :6], atol=1e-6, rtol=0)
    # w_l-hat: the real part of a sum that is purely imaginary for odd l, so 0 there. LAMMPS
    # 2021 gives 0; LAMMPS 2025 sums over one member of each symmetry group of (m1, m2, m3),
    # a shortcut its source says holds for even l only, and prints other numbers for odd l.
    odd = 6 + np.flatnonzero(np.array(LS) % 2 == 1)
    even = 6 + np.flatnonzero(np.array(LS) % 2 == 0)
    np.testing.assert_allclose(got[:, even], lmp[:, even], atol=1e-6, rtol=0)
    np.testing.assert_allclose(got[:, odd], 0.0, atol=1e-12)
    assert np.abs(got[:, :6] - lmp[:, :6]).max() < 1e-10
