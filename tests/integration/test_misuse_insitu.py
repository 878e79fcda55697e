"""Misuse of the in-situ analysis under real LAMMPS and real mpirun: every case ends in one
clear error naming the fix, or in the documented result (issue: no silent wrong answers)."""

from __future__ import annotations

import math
import re
import subprocess

import numpy as np
import pytest
from lammps_helpers import lammps_env, run_lammps

from insitu.io.lammps_dump import read_lammps_dump
from insitu.launch import mpirun_command
from insitu.model import Classifier
from insitu.resources import model_path

NM = model_path("crystal-nm")  # no atom-type metadata
# ghosts it needs in situ with the scripts' 2 A skin: its descriptor cutoff 6.5 A (its
# neighbour consensus, 4 A, reads the ghosts' probabilities from their owners) + 2 A
NEED = math.ceil((Classifier.load(NM).exchange_cutoff + 2.0) * 10) / 10
NI = model_path("ni-fcc-liquid-amorphous")  # atom types {1: Ni}
CUZR = model_path("cuzr-liquid-amorphous")  # atom types {1: Cu, 2: Zr}

FCC = """
lattice fcc 3.52
region box {region} 0 {n} 0 {n} 0 {n} {tilt}
create_box {ntypes} box
create_atoms 1 box
"""


def script(system: str, model, options=("every=5",), every: int = 5, steps: int = 10,
           units: str = "metal", comm: float | None = NEED, pair: str = "eam",
           coeff: str = "1 1 Ni_u3.eam", boundary: str = "p p p", extra: str = "",
           dump_step0: bool = False) -> str:
    opts = " ".join(options)
    n = 3 + len(options)
    return f"""
units {units}
boundary {boundary}
{system}
mass * 58.69
pair_style {pair}
pair_coeff {coeff}
neighbor 2.0 bin
neigh_modify delay 0 every 1 check yes
{'' if comm is None else f'comm_modify cutoff {comm}'}
fix nm_atoms all property/atom i_nm_class d_nm_conf
python insitu_attach input {n} SELF nm {model} {opts} format p{'s' * (n - 1)} &
    here "from insitu.coupling import insitu_attach"
python insitu_attach invoke
{'dump d0 all custom 1000 step0.dump id type x y z i_nm_class d_nm_conf' if dump_step0 else ''}
fix nm all python/invoke {every} end_of_step insitu_nm
{extra}
thermo_style custom step temp pe v_nm_unknown v_nm_conf
thermo {every}
run {steps}
"""


def fcc(n: int = 4, ntypes: int = 1, triclinic: bool = False) -> str:
    return FCC.format(region="prism" if triclinic else "block", n=n, ntypes=ntypes,
                      tilt="1.5 0.5 0.5" if triclinic else "")


def output(proc) -> str:
    return proc.stdout + proc.stderr


def assert_refused(proc, *needles: str) -> None:
    text = output(proc)
    assert proc.returncode != 0, text[-3000:]
    assert text.count("ERROR insitu") == 1, text[-3000:]  # once, from rank 0
    # the message itself once; each rank adds one short line pointing at it
    assert text.count(needles[0]) == 1, text[-3000:]
    for needle in needles:
        assert needle in text, (needle, text[-3000:])
    assert "Loop time" not in text


def thermo(proc) -> np.ndarray:
    rows = re.findall(r"^\s+(\d+(?:\s+-?[\d.eE+-]+|\s+nan|\s+-?inf){4})\s*$", proc.stdout, re.M)
    return np.array([[float(v) for v in r.split()] for r in rows])


# -- case 1: model and atom types -------------------------------------------------------
def test_single_element_model_refuses_two_types(tmp_path):
    proc = run_lammps(script(fcc(ntypes=2), NI, coeff="* * Ni_u3.eam"), tmp_path, 2,
                      check=False)
    assert_refused(proc, "trained for 1 atom type(s) (1: Ni)", "declares 2 atom type(s)")


def test_two_channel_model_refuses_one_type(tmp_path):
    proc = run_lammps(script(fcc(), CUZR), tmp_path, 2, check=False)
    assert_refused(proc, "trained for 2 atom type(s) (1: Cu, 2: Zr)", "declares 1 atom type(s)")


def test_model_without_type_metadata_says_what_it_assumes_once(tmp_path):
    proc = run_lammps(script(fcc(), NM), tmp_path, 2)
    assert output(proc).count("has no atom-type metadata") == 1
    assert "one geometric channel" in proc.stdout


# -- case 2: ghost cutoff: never accept too small, never refuse enough ------------------
@pytest.mark.parametrize("short", [1.3, 0.5])
def test_ghost_cutoff_too_small_is_refused(tmp_path, short):
    comm = round(NEED - short, 1)
    proc = run_lammps(script(fcc(6), NM, comm=comm), tmp_path, 2, check=False)
    assert_refused(proc, f"ghost atom cutoff is {comm:g}", f"comm_modify cutoff {NEED:g}")


def test_ghost_cutoff_just_enough_is_accepted(tmp_path):
    proc = run_lammps(script(fcc(6), NM, comm=NEED), tmp_path, 2)
    assert len(thermo(proc)) == 3


def test_triclinic_box_is_checked(tmp_path):
    comm = round(NEED - 1.5, 1)
    proc = run_lammps(script(fcc(6, triclinic=True), NM, comm=comm), tmp_path, 2, check=False)
    assert_refused(proc, f"ghost atom cutoff is {comm:g}", f"comm_modify cutoff {NEED:g}")
    ok = run_lammps(script(fcc(6, triclinic=True), NM, comm=NEED), tmp_path / "ok", 2)
    assert len(thermo(ok)) == 3


def test_open_cluster_with_large_ghost_cutoff_is_accepted(tmp_path):
    cluster = """
lattice fcc 3.52
region box block -20 20 -20 20 -20 20
create_box 1 box
region ball sphere 0 0 0 2.0
create_atoms 1 region ball
"""
    proc = run_lammps(script(cluster, NM, comm=20.0, boundary="f f f"), tmp_path, 2)
    assert 100 <= int(re.findall(r"Created (\d+) atoms", proc.stdout)[-1]) <= 200
    assert len(thermo(proc)) == 3


def test_without_a_log_the_check_is_conservative(tmp_path):
    """-log none and the screen on a pipe: nothing to read the exact value from."""
    for comm, ok in ((NEED, False), (NEED + 3.5, True)):
        work = tmp_path / str(comm)
        work.mkdir()
        (work / "in.lmp").write_text(script(fcc(6), NM, comm=comm))
        proc = subprocess.run(mpirun_command(2, "in.lmp", extra=["-log", "none"]), cwd=work,
                              env=lammps_env(), capture_output=True, text=True, timeout=300)
        if ok:
            assert proc.returncode == 0, output(proc)[-3000:]
        else:
            assert_refused(proc, "cannot read LAMMPS's ghost cutoff", "comm_modify cutoff")


# -- cases 3 and 4: environments the descriptor cannot describe -------------------------
def test_dilute_gas_is_unknown(tmp_path):
    gas = """
region box block 0 80 0 80 0 80
create_box 1 box
create_atoms 1 random 60 4821 box
"""
    proc = run_lammps(script(gas, NM, pair="zero 6.0", coeff="* *"), tmp_path, 2)
    rows = thermo(proc)[1:]  # step 0 is not analysed
    assert len(rows) == 2
    assert np.all(rows[:, 3] == 1.0)  # v_nm_unknown: every atom
    assert np.all(rows[:, 4] == 0.0)  # v_nm_conf: no confidence in anything
    assert output(proc).count("cannot be described") == 1


def test_coincident_atoms_are_unknown_and_confidence_stays_finite(tmp_path):
    system = fcc(5) + "create_atoms 1 single 0.0 0.0 0.0 units box\n"
    proc = run_lammps(script(system, NM, pair="zero 6.0", coeff="* *"), tmp_path, 2)
    rows = thermo(proc)[1:]  # step 0 is not analysed
    assert len(rows) == 2 and np.all(np.isfinite(rows[:, 3:]))
    assert np.all(rows[:, 3] >= 2 / 501)  # at least the two coincident atoms
    assert np.all(rows[:, 4] > 0.5)  # the rest of the crystal keeps its confidence
    assert output(proc).count("cannot be described") == 1


# -- case 5: every= and the fix's interval --------------------------------------------
@pytest.mark.parametrize("fix_every,every", [(10, 20), (20, 10)])
def test_every_must_match_the_fix_interval(tmp_path, fix_every, every):
    proc = run_lammps(script(fcc(), NM, options=(f"every={every}",), every=fix_every,
                             steps=60), tmp_path, 2, check=False)
    text = output(proc)
    assert proc.returncode != 0
    assert f"every={every}" in text and "give the same interval N" in text
    assert text.count("ERROR insitu") == 1


# -- case 6: log file that cannot be written --------------------------------------------
def test_unwritable_log_fails_at_attach(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    proc = run_lammps(script(fcc(), NM, options=("every=5", "log=afile/log.h5")), tmp_path, 2,
                      check=False)
    assert_refused(proc, "log=", "afile")


# -- case 8: units ------------------------------------------------------------------------
def test_lj_units_are_refused(tmp_path):
    system = "lattice fcc 1.0\nregion box block 0 4 0 4 0 4\ncreate_box 1 box\n" \
             "create_atoms 1 box\n"
    proc = run_lammps(script(system, NM, units="lj", comm=3.0, pair="lj/cut 2.5",
                             coeff="1 1 1.0 1.0"), tmp_path, 1, check=False)
    assert_refused(proc, "units lj", "Angstrom")


# -- case 9: per-atom values before the first analysis ------------------------------------
def test_per_atom_class_is_minus_one_before_the_first_analysis(tmp_path):
    run_lammps(script(fcc(), NM, dump_step0=True), tmp_path, 2)
    frame = read_lammps_dump(tmp_path / "step0.dump", index=0)
    assert frame.step == 0
    assert np.all(frame.info["columns"]["i_nm_class"] == -1)


# -- case 12: a user's own folder, a shipped model by name, one short error ---------------
def test_shipped_model_by_name_from_any_folder(tmp_path):
    proc = run_lammps(script(fcc(), "crystal-nm", options=("every=5", "log=out/log.h5")),
                      tmp_path, 2)
    assert (tmp_path / "out" / "log.h5").is_file()
    assert len(thermo(proc)) == 3


def test_missing_model_is_one_short_error(tmp_path):
    proc = run_lammps(script(fcc(), "models/nope.onnx"), tmp_path, 2, check=False)
    assert_refused(proc, "model file 'models/nope.onnx' not found", "crystal-nm")
    assert "Traceback" not in output(proc)


def test_a_model_without_its_screening_network_is_one_short_error(tmp_path):
    """crystal-nm copied without crystal-nm.screen.onnx: refused at attach on every rank with
    the fix; ``screen=no`` runs the paper CNN alone, sure of the cold fcc crystal."""
    import shutil

    shutil.copyfile(NM, tmp_path / "crystal-nm.onnx")
    proc = run_lammps(script(fcc(), "crystal-nm.onnx"), tmp_path, 2, check=False)
    assert_refused(proc, "screening network", "crystal-nm.screen.onnx is missing",
                   "screen=no")
    proc = run_lammps(script(fcc(), "crystal-nm.onnx", options=("every=5", "screen=no")),
                      tmp_path, 2)
    rows = thermo(proc)
    assert len(rows) == 3 and np.all(rows[1:, 3] == 0) and np.all(rows[1:, 4] > 0.9)


# -- case 7: an existing log is continued when compatible, never silently overwritten ----
def log_rows(path) -> np.ndarray:
    from insitu.io.phase_log import read_log

    return read_log(path).step


def test_restart_appends_to_the_log_and_a_rerun_is_refused(tmp_path):
    first = script(fcc(), NM, options=("every=5", "log=log.h5"), extra="") + \
        "write_restart r.restart\n"
    run_lammps(first, tmp_path, 2)
    np.testing.assert_array_equal(log_rows(tmp_path / "log.h5"), [5, 10])
    again = script("read_restart r.restart", NM, options=("every=5", "log=log.h5"))
    run_lammps(again, tmp_path, 2)
    np.testing.assert_array_equal(log_rows(tmp_path / "log.h5"), [5, 10, 15, 20])
    # the same script from step 0 again: refused, every row kept
    rerun = run_lammps(first, tmp_path, 2, check=False)
    assert_refused(rerun, "already holds rows up to step 20", "log_mode=overwrite")
    np.testing.assert_array_equal(log_rows(tmp_path / "log.h5"), [5, 10, 15, 20])


def test_log_of_another_analysis_is_refused_unless_overwrite(tmp_path):
    run_lammps(script(fcc(), NM, options=("every=5", "log=log.h5")), tmp_path, 2)
    boo = model_path("crystal-boo")
    other = run_lammps(script(fcc(), boo, options=("every=5", "log=log.h5"), comm=12.0),
                       tmp_path, 2, check=False)
    assert_refused(other, "written by another analysis", "model_sha256")
    run_lammps(script(fcc(), boo, options=("every=5", "log=log.h5", "log_mode=overwrite"),
                      comm=12.0), tmp_path, 2)
    from insitu.io.phase_log import read_log

    log = read_log(tmp_path / "log.h5")
    assert log.attrs["model_path"].endswith("crystal-boo.onnx") and len(log.step) == 2
