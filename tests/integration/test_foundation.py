"""Environment and the LAMMPS coupling basics: doctor, a real fix python/invoke on 2 ranks."""

import re
import subprocess
import sys

from lammps_helpers import REPO, run_lammps

from insitu.cli.doctor import python_package_check


def test_python_package_decision_fails_without_python_invoke():
    check = python_package_check(["nve", "nvt", "ave/time"], ["MANYBODY", "KSPACE"])
    assert not check.ok
    assert "python/invoke" in check.detail and "PKG_PYTHON" in check.fix
    assert check.line().startswith("FAIL")


def test_python_package_decision_passes_with_python_invoke():
    assert python_package_check(["nve", "python/invoke"], ["PYTHON"]).ok


def test_doctor_exits_zero_on_this_machine():
    proc = subprocess.run([sys.executable, "-m", "insitu", "doctor"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    assert re.search(r"callback from insitu called 5 times", proc.stdout)


CENSUS = """
units metal
lattice fcc 3.52
region box block 0 6 0 6 0 6
create_box 1 box
create_atoms 1 box
mass 1 58.69
pair_style eam
pair_coeff 1 1 Ni_u3.eam
velocity all create 1200 7
fix 1 all nvt temp 1200 1200 0.1
variable census_atoms string -1
variable census_ranks string -1
variable atoms_seen equal v_census_atoms
variable ranks_seen equal v_census_ranks
python census_callback here "from insitu.coupling.diagnostics import census_callback"
fix py all python/invoke 5 end_of_step census_callback
thermo 5
thermo_style custom step atoms v_atoms_seen v_ranks_seen
run 40
"""


def test_callback_runs_on_every_rank(tmp_path):
    """Each call sums the ranks' local atom counts over LAMMPS's communicator: the sum
    equals the atom count (and 2 ranks took part) at every call, atoms migrate meanwhile."""
    proc = run_lammps(CENSUS, tmp_path, nprocs=2, timeout=120)
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s*$", proc.stdout, re.M)
    rows = [tuple(float(v) for v in r) for r in rows]
    called = [r for r in rows if r[0] > 0]
    assert len(called) == 8, proc.stdout[-2000:]
    for _step, natoms, seen, ranks in called:
        assert seen == natoms == 864
        assert ranks == 2


def test_lammps_jobs_are_not_pinned_to_the_first_cores(tmp_path):
    """Two `insitu ramp run` jobs side by side each ran at half speed: OpenMPI bound the
    single rank of both to core 0. mpirun_command leaves the ranks free to use every core
    this process may use (read from a shell that the LAMMPS rank starts)."""
    import os

    allowed = sorted(os.sched_getaffinity(0))
    script = "shell grep Cpus_allowed_list /proc/self/status > affinity.txt\n"
    run_lammps(script, tmp_path, nprocs=1)
    line = (tmp_path / "affinity.txt").read_text().split(":")[1].strip()
    cpus = set()
    for part in line.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    assert set(allowed) <= cpus, f"rank pinned to {line}, this process may use {allowed}"
