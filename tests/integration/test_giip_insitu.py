"""GIIP in situ under real LAMMPS and real mpirun (2 ranks): LAEs sampled during the run are
the LAEs of the dumped atoms, and the in-situ cluster fractions equal the offline projection
of the same step."""

from __future__ import annotations

import re

import numpy as np
from lammps_helpers import run_lammps

from insitu.giip import GIIPSettings, distance_matrix, extract_laes, fit_model
from insitu.giip.pipeline import project_frame
from insitu.io.lammps_dump import iter_lammps_dump
from insitu.testing import NI_LATTICE, lattice, thermal, write_data

SETTINGS = GIIPSettings(dim=3, sigma=0.5, inner=2.9, outer=3.2, coarse_deg=30.0)

ANALYSIS = """python giip_attach input 7 SELF gp every=5 model=model.npz max_atoms=0 &
    sample=laes.h5 n_sample=30 format pssssss &
    here "from insitu.coupling.giip_insitu import giip_attach"
python giip_attach invoke
fix gp all python/invoke 5 end_of_step giip_gp
dump d all custom 5 atoms.dump id type x y z
dump_modify d sort id format float %.15g
thermo 5
thermo_style custom step temp {columns} v_gp_other v_gp_far v_gp_m1
thermo_modify format float %.15g
run 10
"""
# ANALYSIS: attach the model in the run folder, project every atom every 5 steps, sample 30
# LAEs per call, dump the same steps; {columns}: the cluster-fraction thermo columns.

SCRIPT = """
units metal
read_data system.data
mass 1 58.69
pair_style eam
pair_coeff 1 1 Ni_u3.eam
neighbor 1.0 bin
neigh_modify delay 0 every 1 check yes
comm_modify cutoff 6.0
velocity all create 300 7 loop geom
fix md all nvt temp 300 300 0.1
""" + ANALYSIS + """python giip_report input 2 SELF gp format ps here &
    "from insitu.coupling.giip_insitu import giip_report"
python giip_report invoke
"""


def run_and_compare(script: str, tmp_path, model, k: int, n_atoms: int):
    """Run ``script`` (ANALYSIS with k fraction columns) on 2 ranks. At steps 5 and 10 the
    thermo fractions (summing to 1 with ``other``), ``far`` and mean c1 must equal the
    offline projection of the dumped step. Returns (stdout, {step: fractions})."""
    columns = " ".join(f"v_gp_c{c}" for c in range(k))
    out = run_lammps(script.replace("{columns}", columns), tmp_path, nprocs=2,
                     timeout=600).stdout
    rows = {int(m.group(1)): [float(x) for x in m.group(2).split()]
            for m in re.finditer(r"^\s+(5|10)\s+([-\d.e+ ]+)$", out, re.M)}
    assert set(rows) == {5, 10}
    frames = {f.step: f for f in iter_lammps_dump(tmp_path / "atoms.dump")}
    fractions = {}
    for step in (5, 10):
        fractions[step], (other, far, m1) = rows[step][1:k + 1], rows[step][k + 1:]
        assert abs(sum(fractions[step]) + other - 1) < 1e-9
        idx, proj, _ = project_frame(model, frames[step])
        assert len(idx) == n_atoms
        offline = np.bincount(proj.cluster, minlength=model.n_clusters) / len(idx)
        assert np.allclose(fractions[step], offline[:k], atol=1e-9)
        assert abs(other - offline[k:].sum()) < 1e-9
        assert abs(far - np.mean(proj.nearest > model.diameter)) < 1e-9
        assert abs(m1 - proj.coords[:, 0].mean()) < 1e-6
    return out, fractions


def crystal_with_vacancies():
    frame = lattice("fcc", NI_LATTICE, 4)
    keep = np.ones(len(frame), bool)
    keep[[0, 150]] = False
    return thermal(frame.subset(keep), 0.05, seed=3)


def test_giip_sampling_and_projection_under_mpirun(tmp_path):
    frame = crystal_with_vacancies()
    laes = extract_laes(frame, np.arange(len(frame)), SETTINGS)
    near_vacancy = np.flatnonzero(laes.weight_sums() < 11.5)
    bulk = np.flatnonzero(laes.weight_sums() > 11.5)[:16]
    train = laes.subset(np.concatenate([bulk, near_vacancy[:16]]))
    model, _ = fit_model(train, SETTINGS, eps=1.0, diameter=1.0, n_coords=3)
    assert model.n_clusters >= 2
    model.save(tmp_path / "model.npz")
    write_data(tmp_path / "system.data", frame)
    k = min(8, model.n_clusters)
    out, fractions = run_and_compare(SCRIPT, tmp_path, model, k, len(frame))
    assert "insitu giip: 'gp' attached on 2 rank(s)" in out
    for step in (5, 10):
        assert 0.5 < max(fractions[step]) < 1       # bulk and the vacancies' neighbours
    costs = re.findall(r"giip gp rank (\d): 2 calls, (\d+) atoms projected, ([\d.]+) ms", out)
    assert sorted(c[0] for c in costs) == ["0", "1"]
    assert sum(int(c[1]) for c in costs) == 2 * len(frame)
    # the sampled LAEs are those of the dumped atoms at the sampled steps
    from insitu.coupling.giip_insitu import read_sampled_laes

    sample = read_sampled_laes(tmp_path / "laes.h5")
    assert len(sample.laes) == 60 and sorted(set(sample.step.tolist())) == [5, 10]
    frames = {f.step: f for f in iter_lammps_dump(tmp_path / "atoms.dump")}
    for step in (5, 10):
        sel = np.flatnonzero(sample.step == step)
        f = frames[step]
        idx = np.searchsorted(f.ids, sample.atom_id[sel])
        offline = extract_laes(f, idx, SETTINGS)
        d = distance_matrix(sample.laes.subset(sel[:6]), offline.subset(np.arange(6)),
                            SETTINGS)
        assert np.diag(d).max() < 1e-4
        assert np.allclose(np.sort(sample.laes.weight_sums()[sel]),
                           np.sort(offline.weight_sums()))



def test_too_few_ghosts_for_the_lae_cutoff_stop_every_rank(tmp_path):
    """A ghost cutoff below outer cutoff + skin would truncate LAEs silently: both ranks
    stop at the first call, and the message names the comm_modify cutoff to add. (LAMMPS's
    own ghost cutoff here is 6.0: the pair cutoff 4.8 + skin 1.0 < comm_modify 6.0.)"""
    wide = GIIPSettings(dim=3, sigma=0.5, inner=5.6, outer=6.0, coarse_deg=30.0)
    frame = crystal_with_vacancies()
    laes = extract_laes(frame, np.arange(0, len(frame), 40), wide)
    model, _ = fit_model(laes, wide, eps=1.0, diameter=1.0, n_coords=2)
    model.save(tmp_path / "model.npz")
    write_data(tmp_path / "system.data", frame)
    proc = run_lammps(SCRIPT.replace("{columns}", "v_gp_c0"), tmp_path, nprocs=2,
                      timeout=120, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert "ghost atom cutoff is 6" in text and "comm_modify cutoff 7" in text, text[-3000:]
    assert "calls," not in text  # stopped at the first call, nothing projected


MPI_MATRIX = """
import numpy as np
from mpi4py import MPI
from insitu.giip import GIIPSettings, LAESet, distance_matrix
rng = np.random.default_rng(5)
n = 37
pos = rng.normal(size=(n, 6, 2))
pos *= 1.12 / np.linalg.norm(pos, axis=2, keepdims=True)
laes = LAESet(pos, np.ones((n, 6)), np.zeros((n, 6), np.int64), np.full(n, 6))
st = GIIPSettings(dim=2, sigma=0.5, inner=1.3, outer=1.75, coarse_deg=10.0, n_starts=3)
rank = MPI.COMM_WORLD.Get_rank()
np.save({out!r}.replace(".npy", f"_comm_{{rank}}.npy"),
        distance_matrix(laes, settings=st, chunk=5, comm=MPI.COMM_WORLD))
np.save({out!r}.replace(".npy", f"_{{rank}}.npy"), distance_matrix(laes, settings=st))
"""


def test_distance_matrix_over_mpi_ranks_equals_serial(tmp_path):
    """distance_matrix(comm=...) under real mpirun: every rank gets the whole matrix,
    equal to the serial one."""
    import shutil
    import subprocess
    import sys

    from lammps_helpers import lammps_env

    script = tmp_path / "matrix.py"
    out = str(tmp_path / "d.npy")
    script.write_text(MPI_MATRIX.format(out=out))
    cmd = [shutil.which("mpirun") or "mpirun", "-np", "2", "--oversubscribe", sys.executable,
           str(script)]
    proc = subprocess.run(cmd, env=lammps_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        d_mpi = np.load(out.replace(".npy", f"_comm_{rank}.npy"))
        serial = np.load(out.replace(".npy", f"_{rank}.npy"))
        assert np.allclose(d_mpi, serial, atol=1e-12)
    assert d_mpi.shape == (37, 37) and d_mpi.max() > 0.1 and np.allclose(d_mpi, d_mpi.T)


SCRIPT_2D = """
units lj
dimension 2
boundary p p p
atom_style atomic
read_data system.data
mass 1 1.0
pair_style lj/cut 2.5
pair_coeff 1 1 1.0 1.0 2.5
neighbor 0.3 bin
neigh_modify delay 0 every 1 check yes
velocity all create 0.02 5 loop geom
fix md all nve
fix flat all enforce2d
timestep 0.003
""" + ANALYSIS


def test_giip_in_situ_in_a_2d_run(tmp_path):
    """The paper's 2D setting in situ: a LAMMPS `dimension 2` Lennard-Jones crystal with
    vacancies on 2 ranks; LAEs use x, y only, and the in-situ fractions and mean c1 equal
    the offline projection of the dumped steps."""
    from insitu.frame import Frame

    settings = GIIPSettings(dim=2, sigma=0.5, inner=1.3, outer=1.75, coarse_deg=10.0,
                            n_starts=3)
    a = 2 ** (1 / 6)
    i, j = np.meshgrid(np.arange(20), np.arange(12), indexing="xy")
    xy = np.column_stack([(a * (i + 0.5 * (j % 2))).ravel(),
                          (a * np.sqrt(3) / 2 * j).ravel()]) + 0.25
    keep = np.ones(len(xy), bool)
    keep[[25, 130]] = False                                # two vacancies
    xy = xy[keep]
    pos = np.column_stack([xy, np.full(len(xy), 0.5)])     # z = 0 in LAMMPS's box
    cell = np.diag([20 * a, 12 * a * np.sqrt(3) / 2, 1.0])
    frame = Frame(pos, cell, [True, True, True], np.ones(len(pos), np.int64))
    frame.info["origin"] = (0.0, 0.0, -0.5)
    write_data(tmp_path / "system.data", frame)
    laes = extract_laes(frame, np.arange(len(frame)), settings)
    cn = laes.weight_sums()
    assert np.sum(cn < 5.5) == 12 and np.allclose(cn[cn > 5.5], 6.0)   # 6 per vacancy
    train = laes.subset(np.concatenate([np.flatnonzero(cn > 5.5)[:20],
                                        np.flatnonzero(cn < 5.5)]))
    model, _ = fit_model(train, settings, eps=1.0, diameter=0.5, n_coords=3)
    assert model.n_clusters >= 2      # a missing neighbour is ~0.9 atoms of difference
    model.save(tmp_path / "model.npz")
    k = min(4, model.n_clusters)
    _, fractions = run_and_compare(SCRIPT_2D, tmp_path, model, k, len(frame))
    for step in (5, 10):
        assert 0.8 < max(fractions[step]) < 1       # bulk, and the vacancies' 12 neighbours
    from insitu.coupling.giip_insitu import read_sampled_laes

    sample = read_sampled_laes(tmp_path / "laes.h5")
    assert sample.laes.positions.shape[2] == 2 and len(sample.laes) == 60
