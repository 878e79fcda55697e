"""The ``insitu`` command line."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cmd_doctor(args) -> int:
    from insitu.doctor import main

    return main(args)


def _cmd_run(args) -> int:
    """Run a LAMMPS input script from Python (one LAMMPS instance per MPI rank)."""
    script = Path(args.script)
    if not script.is_file():
        print(f"insitu run: input script '{script}' not found", file=sys.stderr)
        return 2
    from lammps import lammps
    from mpi4py import MPI  # initialise MPI before LAMMPS so both share MPI_COMM_WORLD

    os.environ["INSITU_INPUT_SCRIPT"] = str(script.resolve())
    lmp = lammps(cmdargs=list(args.lammps_args))
    lmp.file(str(script))
    lmp.close()
    MPI.COMM_WORLD.Barrier()
    return 0


def _cmd_lmp(args) -> int:
    """Exec the `lmp` binary with PYTHONPATH set so its embedded Python finds insitu."""
    from insitu.doctor import lammps_env

    binary = args.binary or shutil.which("lmp") or shutil.which("lmp_mpi")
    if binary is None:
        print("insitu lmp: no `lmp` on PATH (run scripts/setup.sh, or pass --binary)",
              file=sys.stderr)
        return 2
    env = lammps_env()
    argv = list(args.lammps_args)
    for flag in ("-in", "-i"):
        if flag in argv[:-1]:
            env["INSITU_INPUT_SCRIPT"] = str(Path(argv[argv.index(flag) + 1]).resolve())
    os.execve(binary, [binary, *argv], env)
    return 0  # not reached


def _cmd_env(args) -> int:
    from insitu.doctor import pythonpath_for_lmp

    print(f"export PYTHONPATH={pythonpath_for_lmp()}")
    return 0


def _cmd_bench(args) -> int:
    """Run every script in benchmarks/ (each merges its figures into results.json)."""
    bench_dir = REPO / "benchmarks"
    scripts = sorted(p for p in bench_dir.glob("*.py") if not p.name.startswith("_"))
    if args.only:
        scripts = [p for p in scripts if p.stem in args.only]
    rc = 0
    for p in scripts:
        print(f"== {p.name}", flush=True)
        rc |= subprocess.call([sys.executable, str(p)], cwd=REPO)
    print(f"results: {bench_dir / 'results.json'}")
    return rc


def _cmd_plot(args) -> int:
    from insitu.plotting import plot_log

    out = plot_log(args.log, args.output, title=args.title)
    print(f"wrote {out or args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="insitu", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("doctor", help="check LAMMPS, MPI, Python and the runtime")
    d.add_argument("--no-run", action="store_true", help="skip the real LAMMPS run")
    d.set_defaults(func=_cmd_doctor)

    r = sub.add_parser("run", help="run a LAMMPS input script from Python "
                       "(mpirun -np N insitu run SCRIPT [lammps args])")
    r.add_argument("script")
    r.add_argument("lammps_args", nargs=argparse.REMAINDER,
                   help="passed to LAMMPS, e.g. -var T 300 -log log.lammps")
    r.set_defaults(func=_cmd_run)

    lm = sub.add_parser("lmp", help="exec the lmp binary with PYTHONPATH set for insitu "
                        "(mpirun -np N insitu lmp -in SCRIPT)")
    lm.add_argument("--binary", default=None)
    lm.add_argument("lammps_args", nargs=argparse.REMAINDER)
    lm.set_defaults(func=_cmd_lmp)

    e = sub.add_parser("env", help="print the PYTHONPATH export that lets `lmp` import insitu")
    e.set_defaults(func=_cmd_env)

    b = sub.add_parser("bench", help="run the benchmarks, write benchmarks/results.json")
    b.add_argument("--only", nargs="*", help="benchmark names (file stems) to run")
    b.set_defaults(func=_cmd_bench)

    pl = sub.add_parser("plot", help="plot an in-situ log: insitu plot LOG.h5 -o PNG")
    pl.add_argument("log")
    pl.add_argument("-o", "--output", required=True)
    pl.add_argument("--title", default=None, help="figure title (default: log and model)")
    pl.set_defaults(func=_cmd_plot)

    try:
        from insitu.classify_cli import add_classify_parser, add_train_parser

        add_classify_parser(sub)
        add_train_parser(sub)
    except ImportError:
        pass
    try:
        from insitu.ramps import add_validate_parser

        add_validate_parser(sub)
    except ImportError:
        pass
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not hasattr(args, "lammps_args"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        # LAMMPS flags (-in, -var, -log ...) belong to LAMMPS, in their original order.
        args.lammps_args = _lammps_args(argv, args)
    return int(args.func(args) or 0)


def _lammps_args(argv, args) -> list:
    """Everything after the subcommand (and its own options) goes to LAMMPS verbatim."""
    argv = list(sys.argv[1:] if argv is None else argv)
    i = argv.index(args.command) + 1
    if args.command == "run":
        i = argv.index(args.script, i) + 1
    elif args.command == "lmp":
        while i < len(argv) and argv[i].startswith("--binary"):
            i += 1 if "=" in argv[i] else 2
    return argv[i:]
