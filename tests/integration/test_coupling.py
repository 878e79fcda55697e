"""In-situ coupling under real LAMMPS and real mpirun."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from lammps_helpers import eam_ni_preamble, lammps_env, run_lammps

from insitu.frame import Frame
from insitu.io.lammps_dump import iter_lammps_dump
from insitu.io.phase_log import read_log
from insitu.launch import mpirun_command
from insitu.model import Classifier
from insitu.model.consensus import Consensus
from insitu.testing import NI_LATTICE, lattice, thermal, write_data
from insitu.training.export import update_metadata

CLASSES = ["fcc", "bcc", "liquid"]

SYSTEM = eam_ni_preamble(2400, 7, "nvt temp 1200 1200 0.1")

ATTACH = """
comm_modify cutoff {comm}
fix nm_atoms all property/atom i_nm_class d_nm_conf
python insitu_attach input 5 SELF nm {model} every=5 log=log.h5 format pssss &
    here "from insitu.coupling import insitu_attach"
python insitu_attach invoke
fix nm all python/invoke 5 end_of_step insitu_nm
"""

OUTPUT = """
dump d all custom 5 labels.dump id type x y z i_nm_class d_nm_conf
dump_modify d sort id format float %.15g
thermo 5
thermo_style custom step temp pe v_nm_fcc v_nm_bcc v_nm_liquid v_nm_unknown v_nm_conf
run {steps}
"""


def write_fcc_data(path, n_cells=5, n_cells_x=None):
    """fcc Ni as a LAMMPS data file with ids in a fixed order, so that the same id is the
    same atom on any number of ranks (create_atoms numbers atoms rank by rank). With
    ``n_cells_x`` the box is that many cells long along x (the atoms fill n_cells)."""
    # thermal like the fixture models' training frames (thermal_ni at 1200 K), so that
    # their labels vary from atom to atom at every analysed step
    frame = lattice("fcc", NI_LATTICE, n_cells)
    if not n_cells_x:  # (a perfect lattice keeps every atom in the left half of a long box)
        frame = thermal(frame, 0.1, seed=7)
    if n_cells_x:
        cell = np.diag([n_cells_x, n_cells, n_cells]) * NI_LATTICE
        frame = Frame(frame.positions, cell, frame.pbc, frame.types)
    return write_data(path, frame)


def script(model, workdir, n=5, comm=6.8, steps=20, extra="", n_x=None):
    data = write_fcc_data(workdir / "fcc.data", n, n_x)
    return (SYSTEM.format(data=data) + ATTACH.format(model=model, comm=comm) + extra
            + OUTPUT.format(steps=steps))


def thermo_rows(stdout: str) -> np.ndarray:
    rows = re.findall(r"^\s+(\d+(?:\s+-?[\d.eE+-]+){7})\s*$", stdout, re.M)
    return np.array([[float(v) for v in r.split()] for r in rows])


def dump_labels(path):
    return {f.step: (f.ids, f.info["columns"]["i_nm_class"].astype(int),
                     f.info["columns"]["d_nm_conf"]) for f in iter_lammps_dump(path)}


@pytest.fixture(scope="module")
def runs(nm_model, tmp_path_factory):
    """The same thermal system analysed on 1, 2 and 4 ranks (4 oversubscribed)."""
    out = {}
    for n in (1, 2, 4):
        d = tmp_path_factory.mktemp(f"np{n}")
        proc = run_lammps(script(nm_model, d), d, nprocs=n, timeout=300)
        out[n] = (d, proc)
    return out


def test_labels_identical_on_1_2_4_ranks(runs):
    labels = {n: dump_labels(d / "labels.dump") for n, (d, _) in runs.items()}
    steps = [s for s in labels[1] if s > 0]
    assert steps == [5, 10, 15, 20]
    for s in steps:
        ids1, lab1, conf1 = labels[1][s]
        known = lab1[lab1 >= 0]
        assert len(np.unique(known)) >= 2 and len(known) > 0.5 * len(lab1), \
            f"the test model should give varied labels at step {s}: {np.unique(lab1)}"
        for n in (2, 4):
            ids, lab, conf = labels[n][s]
            np.testing.assert_array_equal(ids, ids1)
            np.testing.assert_array_equal(lab, lab1)
            np.testing.assert_allclose(conf, conf1, rtol=1e-5)


def test_thermo_log_and_dump_agree(runs, nm_model):
    d, proc = runs[2]
    thermo = thermo_rows(proc.stdout)
    thermo = thermo[thermo[:, 0] > 0]
    log = read_log(d / "log.h5")
    labels = dump_labels(d / "labels.dump")
    np.testing.assert_array_equal(log.step, thermo[:, 0])
    names = CLASSES + ["unknown"]
    for i, step in enumerate(log.step):
        ids, lab, conf = labels[int(step)]
        recount = np.array([np.sum(lab == k) for k in range(len(CLASSES))] + [np.sum(lab < 0)])
        logged = np.array([log.counts[c][i] for c in names])
        np.testing.assert_array_equal(logged, recount)
        fractions = np.array([log.fractions[c][i] for c in names])
        np.testing.assert_allclose(fractions, recount / len(lab))
        np.testing.assert_allclose(thermo[i, 3:7], fractions, atol=1e-5)  # thermo: 8 digits
        np.testing.assert_allclose(log.mean_confidence[i], conf.mean(), rtol=1e-5)
        np.testing.assert_allclose(thermo[i, 7], conf.mean(), rtol=1e-4)
    # thermo values logged beside the fractions come from the same steps
    np.testing.assert_allclose(log.temperature, thermo[:, 1], rtol=1e-4)
    np.testing.assert_allclose(log.potential_energy, thermo[:, 2], rtol=1e-6)
    assert np.all(log.timings["total"] > 0)
    attrs = log.attrs
    assert attrs["n_ranks"] == 2 and attrs["lammps_version"] > 20200000
    assert attrs["classes"] == CLASSES
    assert attrs["model_sha256"] == Classifier.load(nm_model).sha256


def test_dump_labels_match_offline_classification(runs, nm_model):
    """The in-situ labels equal the offline classification of the dumped positions."""
    d, _ = runs[2]
    frame = [f for f in iter_lammps_dump(d / "labels.dump") if f.step == 20][0]
    offline = Classifier.load(nm_model).classify(frame)
    np.testing.assert_array_equal(offline.label_index,
                                  frame.info["columns"]["i_nm_class"].astype(int))


def test_ghost_cutoff_error_names_comm_modify(tmp_path, random_model):
    """A 6 A descriptor with a 2 A skin needs 8 A of ghosts; EAM Ni gives 4.8 + 2 A."""
    from insitu.descriptors import NeighborsMap

    model = random_model(tmp_path / "wide.onnx", NeighborsMap(cutoff=6.0, n_grid=8),
                              CLASSES, "cnn")
    t0 = time.time()
    proc = run_lammps(script(model, tmp_path, comm=5.0), tmp_path, nprocs=2, timeout=120,
                      check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "comm_modify cutoff 8" in text and "6.00 A (its cutoff)" in text, text[-3000:]
    assert time.time() - t0 < 60


def test_exception_on_one_rank_ends_job_quickly(nm_model, tmp_path):
    sabotage = '''
python sabotage here """
def sabotage():
    import __main__
    from mpi4py import MPI
    if MPI.COMM_WORLD.rank == 1:
        def boom(*args, **kwargs):
            raise RuntimeError('injected failure on rank 1')
        __main__.insitu_nm.classifier.predict_mc = boom
"""
python sabotage invoke
'''
    t0 = time.time()
    proc = run_lammps(script(nm_model, tmp_path, steps=200, extra=sabotage), tmp_path, nprocs=2,
                      timeout=90, check=False)
    elapsed = time.time() - t0
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "rank 1 of 2, step 5" in text and "injected failure on rank 1" in text
    assert elapsed < 60


def test_sigkill_leaves_readable_log(nm_model, tmp_path):
    (tmp_path / "in.lmp").write_text(script(nm_model, tmp_path, n=5, steps=100000))
    proc = subprocess.Popen(mpirun_command(2, "in.lmp"), cwd=tmp_path, env=lammps_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    log = tmp_path / "log.h5"
    rows = 0
    deadline = time.time() + 180
    try:
        while time.time() < deadline and rows < 4:
            time.sleep(1.0)
            if log.exists():
                try:
                    rows = len(read_log(log).step)
                except (OSError, KeyError, ValueError):
                    rows = 0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert rows >= 4, "the run did not log 4 rows in time"
    after = read_log(log)
    assert len(after.step) >= rows
    np.testing.assert_array_equal(after.step, 5 * np.arange(1, len(after.step) + 1))
    total = sum(after.counts[c] for c in CLASSES + ["unknown"])
    assert np.all(total == 500)


def test_rank_without_atoms(nm_model, tmp_path):
    """Atoms fill only the left half of the box; with 2 ranks along x, rank 1 owns none."""
    text = script(nm_model, tmp_path, steps=10, n_x=12).replace(
        "read_data", "processors 2 1 1\nread_data")
    text = text.replace("fix md all nvt temp 1200 1200 0.1", "fix md all nve")
    text = text.replace("velocity all create 2400 7 loop geom", "velocity all create 50 7")
    text = text.replace("run 10", "variable n1 equal nlocal\nrun 10")
    proc = run_lammps(text, tmp_path, nprocs=2, timeout=120)
    # 2021 prints "250.000 ave", 2025 "250 ave"
    assert re.search(r"Nlocal:\s+250(\.0+)? ave\s+500 max\s+0 min", proc.stdout), proc.stdout
    thermo = thermo_rows(proc.stdout)
    thermo = thermo[thermo[:, 0] > 0]
    np.testing.assert_allclose(thermo[:, 3:7].sum(axis=1), 1.0, atol=1e-5)
    log = read_log(tmp_path / "log.h5")
    total = sum(log.counts[c] for c in CLASSES + ["unknown"])
    np.testing.assert_array_equal(total, 500)


def test_boo_path_matches_offline_on_two_ranks(boo_model, tmp_path):
    """BOO + MLP in situ: each dumped frame's labels equal the offline classification."""
    run_lammps(script(boo_model, tmp_path), tmp_path, nprocs=2, timeout=300)
    frames = [f for f in iter_lammps_dump(tmp_path / "labels.dump") if f.step > 0]
    assert len(frames) == 4
    clf = Classifier.load(boo_model)
    for frame in frames:
        offline = clf.classify(frame)
        insitu_labels = frame.info["columns"]["i_nm_class"].astype(int)
        np.testing.assert_array_equal(offline.label_index, insitu_labels)
        np.testing.assert_allclose(offline.confidence, frame.info["columns"]["d_nm_conf"],
                                   rtol=1e-5)
    assert len(np.unique(insitu_labels)) >= 2


# -- a model with a neighbour consensus (insitu.model.consensus): the probabilities of the
# ghost atoms a rank's consensus reads come from the ranks that own them (coupling.halo)
RULE = Consensus(n_neighbors=12, cutoff_angstrom=3.0)  # Ni's first shell: 2.49 A


@pytest.fixture(scope="module")
def consensus_nm(nm_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("consensus") / "nm-consensus.onnx"
    shutil.copy(nm_model, path)
    update_metadata(path, {"consensus": RULE.to_metadata()})
    return path


@pytest.fixture(scope="module")
def consensus_runs(consensus_nm, tmp_path_factory):
    out = {}
    for n in (1, 2, 4):  # ghosts as without the consensus: 4.6 A + 2 A skin
        d = tmp_path_factory.mktemp(f"cons{n}")
        run_lammps(script(consensus_nm, d, n=6, comm=6.8, steps=10), d, nprocs=n, timeout=300)
        out[n] = d
    return out


def test_consensus_labels_identical_on_1_2_4_ranks_and_offline(consensus_runs, consensus_nm,
                                                                nm_model):
    labels = {n: dump_labels(d / "labels.dump") for n, d in consensus_runs.items()}
    for s in (5, 10):
        ids1, lab1, conf1 = labels[1][s]
        for n in (2, 4):
            ids, lab, conf = labels[n][s]
            np.testing.assert_array_equal(ids, ids1)
            np.testing.assert_array_equal(lab, lab1)
            np.testing.assert_allclose(conf, conf1, rtol=1e-5)
    frame = [f for f in iter_lammps_dump(consensus_runs[2] / "labels.dump") if f.step == 10][0]
    offline = Classifier.load(consensus_nm).classify(frame)
    np.testing.assert_array_equal(offline.label_index,
                                  frame.info["columns"]["i_nm_class"].astype(int))
    own = Classifier.load(nm_model).classify(frame)  # the rule changes labels
    assert np.mean(own.label_index != offline.label_index) > 0.02


def test_ghost_cutoff_error_names_a_consensus_radius_beyond_the_cutoff(nm_model, tmp_path):
    """A consensus radius (6 A) larger than the descriptor's cutoff (4.6 A) sets the ghost
    atoms a rank needs: 6 + 2 A skin."""
    wide = tmp_path / "wide-consensus.onnx"
    shutil.copy(nm_model, wide)
    update_metadata(wide, {"consensus": Consensus(12, 6.0).to_metadata()})
    proc = run_lammps(script(wide, tmp_path, n=6, comm=6.8, steps=5), tmp_path,
                      nprocs=2, timeout=300, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "neighbour-consensus radius 6.00" in text and "comm_modify cutoff 8" in text, \
        text[-3000:]


def test_consensus_no_gives_the_atoms_own_labels(consensus_nm, nm_model, tmp_path):
    text = script(consensus_nm, tmp_path, n=6, comm=6.8, steps=10).replace(
        "input 5 SELF nm", "input 6 SELF nm").replace(
        "every=5 log=log.h5 format pssss", "every=5 log=log.h5 consensus=no format psssss")
    run_lammps(text, tmp_path, nprocs=2, timeout=300)  # ghosts to 4.6 A + skin suffice
    frame = [f for f in iter_lammps_dump(tmp_path / "labels.dump") if f.step == 10][0]
    own = Classifier.load(nm_model).classify(frame)
    np.testing.assert_array_equal(own.label_index,
                                  frame.info["columns"]["i_nm_class"].astype(int))
