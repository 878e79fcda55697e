"""``insitu ramp run|train|offline-log``: the papers' ramps of ``lammps_inputs/``.

``run``: one ramp under ``mpirun`` (quick defaults), with the in-situ analysis when
``--model`` names a model, with snapshots for training when ``--dump``.

``train``: auto-labelled training on the snapshots of one or more ramp runs (Neighbors Map
paper, Sec. 3.3.2 / 3.4.2): whole snapshots labelled from evidence in each run (PE jump, PE
slope change, MSD, CNA), the paper's CNN validated on other runs (``--val-data``, other
velocity seeds) or a split by snapshot, exported to ONNX with a model card. With
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
    r.add_argument("--seed", type=int, default=None,
                   help="velocity seed (-var seed; default the input's)")
    r.add_argument("--var", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="any other -var of the input (e.g. --var heat_rate 1e13)")
    t = sub.add_parser("train", help="auto-labelled training on a ramp's snapshots",
                       description="Auto-labelled training on a ramp's snapshots.")
    t.add_argument("system", metavar="SYSTEM",
                   help="a system of insitu.training.ramp_systems.RAMP_SYSTEMS: ni or cuzr")
    t.add_argument("--data", nargs="+", default=None,
                   help="ramp output folder(s) with snapshots/, one per training run (velocity "
                   "seed) (default data/<system>_ramp)")
    t.add_argument("--val-data", nargs="+", default=None,
                   help="validation run folder(s): other seeds, never a training run (default: "
                   "a split by snapshot of the training runs)")
    t.add_argument("--run", action="store_true",
                   help="first run the quick ramp with dumps, once per seed of --seeds and "
                   "--val-seeds, into data/<system>_ramp_seeds/seed<SEED>")
    t.add_argument("--seeds", nargs="+", type=int, default=[101, 202, 303],
                   help="with --run: velocity seeds of the training runs (default "
                   "%(default)s)")
    t.add_argument("--val-seeds", nargs="+", type=int, default=[404],
                   help="with --run: velocity seeds of the validation runs (default "
                   "%(default)s); the demos and examples use none of these seeds")
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
    data = [Path(d) for d in (args.data or [f"data/{system.name}_ramp"])]
    val = args.val_data
    if args.run:
        root = Path(f"data/{system.name}_ramp_seeds")
        data = [root / f"seed{s}" for s in args.seeds]
        val = [root / f"seed{s}" for s in args.val_seeds]
        for d, s in zip(data + val, args.seeds + args.val_seeds):
            run_ramp(system, d, args.nprocs, dump=True, extra_vars={"seed": s})
    path, report = train_ramp_model(system, data, args.output, epochs=args.epochs,
                                    seed=args.seed, atoms_per_snapshot=args.atoms_per_snapshot,
                                    t_melt=args.t_melt, progress=True, threads=args.threads,
                                    val_data=val)
    print(f"model written to {path} (validation accuracy "
          f"{accuracy_text(report.get('val_accuracy'))}), card {path.with_suffix('.md')}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from insitu.training.ramp_training import run_ramp

    system = _system(args)
    extra = dict(args.var)
    if args.seed is not None:
        extra["seed"] = args.seed
    out = run_ramp(system, args.outdir or f"out/{system.name}_ramp", args.nprocs,
                   dump=args.dump, model=args.model, extra_vars=extra)
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
