"""Differences between LAMMPS versions, in one place (2021 Debian build and 2022+ builds).

* publishing a string variable: ``set_variable`` (2021) / ``set_string_variable`` (2023+);
* LAMMPS's communicator: ``get_mpi_comm()`` returns None with mpi4py 4 on the 2021 module,
  so fall back to the C call that returns the Fortran handle;
* ``numpy.extract_atom`` returns nlocal rows in 2021 and nlocal + nghost rows in 2025:
  always pass the size;
* ``flush_buffers`` (2022+) makes the log readable during a run.
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np

__all__ = ["LMP_STYLE_GLOBAL", "LMP_TYPE_VECTOR", "set_string_variable", "mpi_communicator",
           "extract_atom_copy", "extract_atom_view", "flush_log", "lammps_log_path",
           "ghost_cutoff_from_log"]

try:  # LAMMPS's own constants where its module is importable
    from lammps.constants import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR
except ImportError:  # pragma: no cover - values of library.h, stable across versions
    LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR = 0, 1


def set_string_variable(lmp, name: str, value: str) -> None:
    """Set a LAMMPS ``string`` variable without issuing a command (safe during a run).
    LAMMPS silently rejects non-string values, so ``value`` is converted with ``str``."""
    setter = getattr(lmp, "set_string_variable", None) or lmp.set_variable
    rc = setter(name, str(value))
    if rc not in (0, None):
        raise RuntimeError(f"could not set LAMMPS variable {name}")


def mpi_communicator(lmp):
    """LAMMPS's own communicator as an mpi4py communicator."""
    from mpi4py import MPI

    try:
        comm = lmp.get_mpi_comm()
    except Exception:  # noqa: BLE001 - the 2021 module's version check fails on mpi4py 4
        comm = None
    if comm is None:
        comm = MPI.Comm.f2py(lmp.lib.lammps_get_mpi_comm(lmp.lmp))
    return comm


def extract_atom_view(lmp, name: str, n: int, dim: int = 1) -> np.ndarray:
    """A numpy view of ``n`` rows of a per-atom array; valid until LAMMPS reallocates."""
    if dim == 1:
        return lmp.numpy.extract_atom(name, nelem=n)
    return lmp.numpy.extract_atom(name, nelem=n, dim=dim)


def extract_atom_copy(lmp, name: str, n: int, dim: int = 1, dtype=np.float64) -> np.ndarray:
    """A copy of ``n`` rows of a per-atom array (local atoms first, then ghosts)."""
    return np.array(extract_atom_view(lmp, name, n, dim), dtype=dtype)


def flush_log(lmp) -> None:
    """Flush LAMMPS's screen and log buffers where the library offers it (2022+)."""
    flush = getattr(lmp, "flush_buffers", None)
    if flush is not None:
        flush()


def lammps_log_path() -> str | None:
    """The log file LAMMPS writes to, from this process's command line (-log/-l)."""
    try:
        with open("/proc/self/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        argv = list(sys.argv)
    path = "log.lammps"
    for i, arg in enumerate(argv[:-1]):
        if arg in ("-log", "-l"):
            path = argv[i + 1]
    return None if path == "none" else path


def ghost_cutoff_from_log() -> float | None:
    """The last 'ghost atom cutoff' LAMMPS printed in its log, or None if not (yet) there."""
    path = lammps_log_path()
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, errors="replace") as fh:
            found = re.findall(r"ghost atom cutoff = ([0-9.eE+-]+)", fh.read())
    except OSError:
        return None
    return float(found[-1]) if found else None
