"""Arguments of ``insitu train fit`` (shared by ``crystal`` and ``material``) and the
``insitu train material`` command: a model for your own material in one command (LAMMPS
data from an element, its structure, pair style and melting point, or your labelled
frames)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

__all__ = ["add_fit_arguments", "add_material_arguments", "material_command", "run_material"]


def add_fit_arguments(f: argparse.ArgumentParser) -> None:
    """Arguments shared by ``insitu train fit`` and ``insitu train crystal``."""
    f.add_argument("--data", default="data/crystal.h5",
                   help="dataset from `insitu train data` (default %(default)s)")
    f.add_argument("--descriptor", choices=("nm", "boo"), default="nm",
                   help="nm: Neighbors Map + paper CNN; boo: Steinhardt q_l + MLP")
    f.add_argument("--out", default=None,
                   help="ONNX output (default models/crystal-<descriptor>.onnx)")
    f.add_argument("--epochs", type=int, default=10,
                   help="passes over the training atoms (default %(default)s)")
    f.add_argument("--seed", type=int, default=0,
                   help="seed of the weights, batches and subsets (default %(default)s)")
    f.add_argument("--threshold", type=float, default=0.5, help="confidence threshold")
    f.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    f.add_argument("--max-train", type=int, default=None, help="cap on training atoms")
    f.add_argument("--batch-size", type=int, default=256,
                   help="atoms per optimiser step (default %(default)s)")
    f.add_argument("--lr", type=float, default=2e-3,
                   help="peak learning rate of the one-cycle schedule (default %(default)s)")
    f.add_argument("--class-weights", choices=("balanced", "none"), default="balanced",
                   help="loss weights: balanced (each class weighs the same) or none "
                   "(each atom weighs the same; default %(default)s)")
    f.add_argument("--no-card", action="store_true", help="do not write the model card .md")
    f.add_argument("--quiet", action="store_true", help="no progress bars")


def add_material_arguments(m: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu train material``."""
    g = m.add_argument_group("material simulated with LAMMPS")
    g.add_argument("--element", help="chemical symbol, e.g. Cu")
    g.add_argument("--structure", choices=("fcc", "bcc", "hcp", "cubic_diamond"),
                   help="its crystal structure at low temperature")
    g.add_argument("--pair-style", help="LAMMPS pair_style, e.g. eam or 'eam/alloy'")
    g.add_argument("--pair-coeff", help="LAMMPS pair_coeff arguments, e.g. '* * Cu_u3.eam' "
                   "(potential files as given or in LAMMPS_POTENTIALS)")
    g.add_argument("--melting-point", type=float,
                   help="melting point of the potential in K (sets the temperature ranges)")
    g.add_argument("--mass", type=float, default=None,
                   help="atomic mass in g/mol (default: ASE's table)")
    g.add_argument("--lattice-constant", type=float, default=None,
                   help="in Angstrom (default: relaxed at 0 K with the potential)")
    g.add_argument("--cells", type=int, default=None,
                   help="unit cells per box edge (default: edges of at least 15 A)")
    g.add_argument("--ramp-ps", type=float, default=10.0,
                   help="length of each ramp in ps (default %(default)s)")
    g.add_argument("--scale-jitter", type=float, default=0.0,
                   help="isotropic rescaling U(1-j,1+j) of training copies (default "
                   "%(default)s)")
    g.add_argument("--workdir", default=None,
                   help="folder of the LAMMPS runs (default: next to --data)")
    lab = m.add_argument_group("or labelled frames")
    lab.add_argument("--labelled", nargs="+", metavar="FILE", default=None,
                     help="LAMMPS dumps (or files ASE reads) with a per-atom label column")
    lab.add_argument("--label-column", default="StructureType",
                     help="the column with the labels: class names, or indices with "
                     "--classes (default %(default)s, as written by insitu classify -o)")
    lab.add_argument("--classes", default=None,
                     help="comma list naming integer labels in index order (-1: unknown)")
    m.add_argument("--missing", default=",".join(str(x) for x in (0, 0.1, 0.2, 0.3, 0.4, 0.5)),
                   help="fractions of atoms removed in the copies of each snapshot "
                   "(default %(default)s)")
    m.add_argument("--min-accuracy", type=float, default=0.99,
                   help="exit 1 when the validation accuracy is below this (default "
                   "%(default)s)")
    add_fit_arguments(m)
    m.set_defaults(data=None, threads=1)
    helps = {"data": "HDF5 dataset written here (default data/<model name>.h5)",
             "out": "ONNX output (default models/<element>-<descriptor>.onnx)",
             "threads": "torch threads (default 1: the same model from the same seed)"}
    for action in m._actions:
        action.help = helps.get(action.dest, action.help)


def material_command(args: argparse.Namespace) -> str:
    """The ``insitu train material`` command line that retrains this model (for its card)."""
    words = ["insitu", "train", "material"]
    for option in ("element", "structure", "pair_style", "pair_coeff", "melting_point", "mass",
                   "lattice_constant", "cells", "ramp_ps", "scale_jitter", "labelled",
                   "label_column", "classes", "missing", "descriptor", "epochs", "seed",
                   "threshold", "threads", "max_train", "batch_size", "lr", "out"):
        value = getattr(args, option)
        if value is None or (option == "label_column" and not args.labelled):
            continue
        flag = "--" + option.replace("_", "-")
        words += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return shlex.join(words)


def run_material(args: argparse.Namespace) -> int:
    from insitu.training.material_train import train_material

    if args.labelled:
        labelled = dict(files=args.labelled, label_column=args.label_column,
                        classes=args.classes.split(",") if args.classes else None)
        material, name = None, Path(args.labelled[0]).name.split(".")[0]
    else:
        need = {"--element": args.element, "--structure": args.structure,
                "--pair-style": args.pair_style, "--pair-coeff": args.pair_coeff,
                "--melting-point": args.melting_point}
        missing = [k for k, v in need.items() if v is None]
        if missing:
            print(f"insitu train material: give {', '.join(missing)} (or --labelled FILE ...)",
                  file=sys.stderr)
            return 2
        material = dict(element=args.element, structure=args.structure,
                        pair_style=args.pair_style, pair_coeff=args.pair_coeff,
                        t_melt=args.melting_point, mass=args.mass,
                        lattice_constant=args.lattice_constant, cells=args.cells)
        labelled, name = None, args.element
    out = Path(args.out or f"models/{name.lower()}-{args.descriptor}.onnx")
    args.out = str(out)  # the card's retraining command names it
    data = Path(args.data or f"data/{out.stem}.h5")
    out, report = train_material(
        out, data, args.descriptor, material=material, labelled=labelled,
        workdir=args.workdir, ramp_ps=args.ramp_ps,
        missing_fractions=[float(x) for x in args.missing.split(",")],
        scale_jitter=args.scale_jitter, seed=args.seed, epochs=args.epochs,
        threshold=args.threshold, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
        max_train=args.max_train, card=not args.no_card, progress=not args.quiet,
        command=material_command(args))
    if "tables" in report:
        print(report["tables"]["markdown"])
    acc = report["val_accuracy"]
    print(f"wrote {out} (classes {report['classes']}): validation accuracy {acc:.4f} on "
          f"{report['n_val']} held-out atoms; data {data}"
          + (f"; card {report['card']}" if "card" in report else ""))
    if acc < args.min_accuracy:
        print(f"insitu train material: validation accuracy {acc:.4f} is below "
              f"--min-accuracy {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0
