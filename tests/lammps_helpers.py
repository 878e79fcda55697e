"""Run real LAMMPS (the `lmp` binary, under real `mpirun`) from tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def lammps_env() -> dict:
    """Environment in which `lmp`'s embedded Python sees this venv's packages and
    OpenMPI runs as root on more ranks than cores."""
    env = dict(os.environ)
    site = sysconfig.get_paths()["purelib"]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), site, env.get("PYTHONPATH")) if p)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")  # ranks > cores: do not spin
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("NUMBA_NUM_THREADS", "1")
    return env


def run_lammps(script: str, workdir: Path, nprocs: int = 1, timeout: float = 300,
               variables: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Write `script` to workdir/in.lmp and run `mpirun -np nprocs lmp -in in.lmp`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text(script)
    cmd = [shutil.which("mpirun") or "mpirun", "-np", str(nprocs), "--oversubscribe",
           shutil.which("lmp") or "lmp", "-in", "in.lmp", "-log", "log.lammps"]
    for k, v in (variables or {}).items():
        cmd += ["-var", k, str(v)]
    proc = subprocess.run(cmd, cwd=workdir, env=lammps_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"LAMMPS failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


PYTHON = sys.executable
