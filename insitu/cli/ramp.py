"""``insitu ramp run|train|offline-log``: the papers' ramps of ``lammps_inputs/``.

``run``: one ramp under ``mpirun`` (quick defaults), with the in-situ analysis when
``--model`` names a model, with snapshots for training when ``--dump``.

``train``: auto-labelled training on a ramp's snapshots (Neighbors Map paper, Sec. 3.3.2 /
3.4.2): whole snapshots labelled from high-confidence windows of temperature and energy,
the paper's CNN trained with a split by snapshot, exported to ONNX with a model card. With
``--run`` the quick ramp of ``lammps_inputs/`` runs first (``mpirun``, snapshots on). Needs
the ``training`` extra.

``offline-log``: classify every snapshot of a ramp run into a log in the in-situ layout,
for ``insitu validate`` / ``insitu plot`` when the in-situ run is not available.
"""

from __future__ import annotations

import argparse
import sys

HELP = ("ramps of lammps_inputs/: run one (run), auto-labelled training (train), offline "
        "log of its snapshots (offline-log)")

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``run``, ``train`` and ``offline-log`` subcommands and their arguments."""
    sub = parser.add_subparsers(dest="ramp_command", metavar="{run,train,offline-log}",
                                required=True)
    r = sub.add_parser("run", help="run a ramp with mpirun (quick defaults)",
                       description="Run a ramp of lammps_inputs/ with mpirun.")
    r.add_argument("system", metavar="SYSTEM", help="ni or cuzr")
    r.add_argument("--outdir", default=None, help="output folder (default out/<system>_ramp)")
    r.add_argument("--nprocs", type=int, default=2, help="MPI ranks")
    r.add_argument("--model", default=None,
                   help="model path or shipped name: switches the in-situ analysis on")
    r.add_argument("--dump", action="store_true", help="write snapshots for training")
    t = sub.add_parser("train", help="auto-labelled training on a ramp's snapshots",
                       description="Auto-labelled training on a ramp's snapshots.")
    t.add_argument("system", metavar="SYSTEM",
                   help="a system of insitu.training.ramp_systems.RAMP_SYSTEMS: ni or cuzr")
    t.add_argument("--data", default=None, help="ramp output folder with snapshots/ "
                   "(default data/<system>_ramp)")
    t.add_argument("--run", action="store_true", help="first run the quick ramp with dumps")
    t.add_argument("--nprocs", type=int, default=2, help="MPI ranks of the ramp run")
    t.add_argument("-o", "--output", default=None,
                   help="model path (default: the shipped model's)")
    t.add_argument("--epochs", type=int, default=10,
                   help="passes over the training atoms (default %(default)s)")
    t.add_argument("--seed", type=int, default=0,
                   help="seed of the weights, batches and subsets (default %(default)s)")
    t.add_argument("--atoms-per-snapshot", type=int, default=None,
                   help="atoms drawn from each labelled snapshot (default: the system's)")
    t.add_argument("--threads", type=int, default=None, help="torch threads")
    t.add_argument("--t-melt", type=float, default=None,
                   help="Ni: melting temperature for the fcc window (default: the PE jump)")

    o = sub.add_parser("offline-log", help="classify a ramp's snapshots into a log",
                       description="Classify a ramp's snapshots into a log.")
    o.add_argument("data", help="ramp output folder with snapshots/")
    o.add_argument("model", help=".onnx model")
    o.add_argument("-o", "--output", required=True, help="HDF5 log to write")


def _system(args: argparse.Namespace):
    """The ramp system named on the command line (ValueError for an unknown name)."""
    from insitu.training.ramp_systems import get_ramp_system

    return get_ramp_system(args.system)


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch  # noqa: F401 - fail now (missing extra), not after the ramp ran

    from insitu.training.model_card import accuracy_text
    from insitu.training.ramp_training import run_ramp, train_ramp_model

    system = _system(args)
    data = Path(args.data or f"data/{system.name}_ramp")
    if args.run:
        run_ramp(system, data, args.nprocs, dump=True)
    path, report = train_ramp_model(system, data, args.output, epochs=args.epochs,
                                    seed=args.seed, atoms_per_snapshot=args.atoms_per_snapshot,
                                    t_melt=args.t_melt, progress=True, threads=args.threads)
    print(f"model written to {path} (validation accuracy "
          f"{accuracy_text(report.get('val_accuracy'))}), card {path.with_suffix('.md')}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from insitu.training.ramp_training import run_ramp

    system = _system(args)
    out = run_ramp(system, args.outdir or f"out/{system.name}_ramp", args.nprocs,
                   dump=args.dump, model=args.model)
    print(f"ramp written to {out}")
    return 0


def _offline_log(args: argparse.Namespace) -> int:
    from insitu.training.ramp_training import log_from_snapshots

    print(f"log written to {log_from_snapshots(args.data, args.model, args.output)}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand."""
    commands = {"run": _run, "train": _train, "offline-log": _offline_log}
    try:
        return commands[args.ramp_command](args)
    except ValueError as exc:  # an unknown ramp system
        print(f"insitu ramp {args.ramp_command}: {exc}", file=sys.stderr)
        return 2
