"""``insitu lmp [--binary LMP] LAMMPS_ARGS``: exec the ``lmp`` binary, set up for insitu.

The environment gets the PYTHONPATH that lets ``lmp``'s embedded Python import insitu and this
environment's packages (see ``insitu env``), so ``mpirun -np 4 insitu lmp -in in.lmp`` runs an
input script with ``fix python/invoke`` callbacks from insitu. Every argument after the
options of this command goes to LAMMPS verbatim.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "exec the lmp binary with PYTHONPATH set for insitu (mpirun -np N insitu lmp -in SCRIPT)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu lmp``."""
    parser.add_argument("--binary", default=None,
                        help="LAMMPS executable (default: lmp, lmp_mpi or lmp_serial on PATH)")
    parser.add_argument("passthrough", nargs=argparse.REMAINDER, metavar="LAMMPS_ARGS",
                        help="passed to lmp, e.g. -in in.lmp -var T 300")


def passthrough(argv: list[str], args: argparse.Namespace) -> list[str]:
    """Everything after ``--binary X`` / ``--binary=X`` belongs to LAMMPS."""
    i = 0
    while i < len(argv) and argv[i].startswith("--binary"):
        i += 1 if "=" in argv[i] else 2
    return argv[i:]


def run(args: argparse.Namespace) -> int:
    """Replace this process by ``lmp`` (does not return on success)."""
    from insitu.launch import lammps_env, lmp_binary

    try:
        binary = args.binary or lmp_binary()
    except FileNotFoundError as exc:
        print(f"insitu lmp: {exc} (or pass --binary)", file=sys.stderr)
        return 2
    env = lammps_env()
    argv = list(args.passthrough)
    for flag in ("-in", "-i"):
        if flag in argv[:-1]:
            env["INSITU_INPUT_SCRIPT"] = str(Path(argv[argv.index(flag) + 1]).resolve())
    os.execve(binary, [binary, *argv], env)
    return 0  # not reached
