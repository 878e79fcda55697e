"""``insitu env``: print the PYTHONPATH export that lets ``lmp`` import insitu.

``eval "$(insitu env)"`` before ``mpirun lmp -in in.lmp`` lets the interpreter embedded in
LAMMPS import insitu and this environment's packages (``insitu lmp`` does it for you).
"""

from __future__ import annotations

import argparse
import shlex

HELP = "print the PYTHONPATH export that lets `lmp` import insitu"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``insitu env`` takes no arguments."""


def run(args: argparse.Namespace) -> int:
    """Print ``export PYTHONPATH=...``."""
    from insitu.launch import pythonpath_for_lmp

    print(f"export PYTHONPATH={shlex.quote(pythonpath_for_lmp())}")
    return 0
