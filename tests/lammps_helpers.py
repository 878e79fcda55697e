"""Run real LAMMPS (the ``lmp`` binary, under real ``mpirun``) from tests, through
:mod:`insitu.launch` (the environment and command lines the package itself uses)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from insitu import launch

REPO = Path(__file__).resolve().parents[1]
"""The source checkout the tests run from (examples/, scripts/)."""


def lammps_env() -> dict:
    """:func:`insitu.launch.lammps_env`, plus one numba thread per rank and MPI ranks that
    yield their core while waiting (the tests oversubscribe small machines)."""
    env = launch.lammps_env()
    env.setdefault("NUMBA_NUM_THREADS", "1")
    env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    return env


def run_lammps(script: str, workdir: Path, nprocs: int = 1, timeout: float = 300,
               variables: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Write ``script`` to workdir/in.lmp and run ``mpirun -np nprocs lmp -in in.lmp`` there
    (thermo log in workdir/log.lammps). With ``check`` a failure raises AssertionError with
    the end of the output."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text(script)
    cmd = launch.mpirun_command(nprocs, "in.lmp", variables, extra=["-log", "log.lammps"])
    proc = subprocess.run(cmd, cwd=workdir, env=lammps_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"LAMMPS failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def eam_ni_preamble(velocity_kelvin: float, seed: int, integrator: str) -> str:
    """The first lines of the tests' LAMMPS inputs: EAM Ni (Ni_u3.eam) read from ``{data}``
    (left as a ``str.format`` field), velocities at ``velocity_kelvin`` from ``seed`` and
    ``fix md all INTEGRATOR``. Neighbour lists are rebuilt whenever needed, so that a test
    never fails on a dangerous build."""
    return ("\nunits metal\nread_data {data}\nmass 1 58.69\npair_style eam\n"
            "pair_coeff 1 1 Ni_u3.eam\nneighbor 2.0 bin\n"
            "neigh_modify delay 0 every 1 check yes\n"
            f"velocity all create {velocity_kelvin:g} {seed} loop geom\n"
            f"fix md all {integrator}\n")
