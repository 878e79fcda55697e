"""LAMMPS callbacks that check the coupling itself (``fix python/invoke``).

* :func:`doctor_callback` counts its calls into the LAMMPS string variable ``doctor_calls``
  (the LAMMPS run of ``insitu doctor``);
* :func:`census_callback` sums the ranks' local atom counts over LAMMPS's communicator into
  ``census_atoms`` and ``census_ranks`` (the integration tests).

In an input script::

    variable doctor_calls string 0
    python doctor_callback here "from insitu.coupling.diagnostics import doctor_callback"
    fix py all python/invoke 2 end_of_step doctor_callback
"""

from __future__ import annotations

import numpy as np

from insitu.coupling.compat import mpi_communicator, set_string_variable

__all__ = ["doctor_callback", "census_callback", "doctor_calls"]

_calls = {"doctor": 0}


def doctor_calls() -> int:
    """How many times :func:`doctor_callback` ran in this process."""
    return _calls["doctor"]


def doctor_callback(ptr: object) -> None:
    """Count this call into the LAMMPS string variable ``doctor_calls``."""
    from lammps import lammps

    _calls["doctor"] += 1
    set_string_variable(lammps(ptr=ptr), "doctor_calls", str(_calls["doctor"]))


def census_callback(ptr: object) -> None:
    """Sum the local atom counts and the participating ranks over LAMMPS's communicator and
    publish them as the string variables ``census_atoms`` and ``census_ranks`` (wrap them in
    equal-style variables to print them in thermo)."""
    from lammps import lammps
    from mpi4py import MPI

    lmp = lammps(ptr=ptr)
    nlocal = int(lmp.extract_setting("nlocal"))
    totals = np.zeros(2, np.int64)
    mpi_communicator(lmp).Allreduce(np.array([nlocal, 1], np.int64), totals, op=MPI.SUM)
    set_string_variable(lmp, "census_atoms", str(int(totals[0])))
    set_string_variable(lmp, "census_ranks", str(int(totals[1])))
