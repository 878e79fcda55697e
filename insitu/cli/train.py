"""``insitu train data|fit|crystal``: generate training data, fit and export classifiers.

* ``data`` runs the LAMMPS ramps and writes the descriptors to HDF5;
* ``fit`` trains a CNN (Neighbors Map) or an MLP (bond-orientational order) on such a dataset
  and exports ONNX with its metadata (and a model card);
* ``crystal`` does both for the shipped crystal models (data only if missing);
* ``card`` rewrites a crystal model's card from the model and its dataset;
* ``transfer`` checks the crystal models on elements they were not trained on.

Needs the ``training`` extra (PyTorch): ``pip install 'insitu[training]'``. The ramp models
are trained by ``insitu ramp train``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = "generate training data, fit and export classifiers (needs the training extra)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``data``, ``fit`` and ``crystal`` subcommands and their arguments."""
    sub = parser.add_subparsers(dest="train_command",
                                metavar="{data,fit,crystal,card,transfer}", required=True)
    d = sub.add_parser("data", help="generate the crystal/liquid dataset with LAMMPS")
    d.add_argument("--out", default="data/crystal.h5", help="HDF5 output (default %(default)s)")
    d.add_argument("--workdir", default=None, help="LAMMPS run folder (default: next to --out)")
    d.add_argument("--descriptors", default="nm,boo", help="comma list of nm,boo")
    d.add_argument("--ramp-ps", type=float, default=10.0, help="ramp length in ps")
    d.add_argument("--scale-jitter", type=float, default=0.1,
                   help="isotropic rescaling U(1-j,1+j) of training copies (augmentation)")
    d.add_argument("--materials", default="Fe,Al,Zr,Si", help="comma list of Fe,Al,Zr,Si")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quiet", action="store_true", help="no progress bars")

    f = sub.add_parser("fit", help="train a classifier on a dataset and export it to ONNX")
    add_fit_arguments(f)

    c = sub.add_parser("crystal", help="retrain a shipped crystal model from scratch "
                       "(data if missing, then fit)")
    add_fit_arguments(c)
    c.add_argument("--scale-jitter", type=float, default=0.1,
                   help="augmentation of the dataset, when it must be generated")

    k = sub.add_parser("card", help="rewrite a crystal model's card from model + dataset")
    k.add_argument("model", help="the .onnx model whose card (.md beside it) is rewritten")
    k.add_argument("--data", default="data/crystal.h5", help="its dataset (default %(default)s)")
    k.add_argument("--command", default=None, help="retraining command shown in the card")
    k.add_argument("--extra", default=None, help="markdown file appended before 'Retrain'")

    t = sub.add_parser("transfer", help="the crystal models on Ni, Cu and Mg (not trained on)")
    t.add_argument("--models", nargs="*", default=["crystal-nm", "crystal-boo"],
                   help="models (paths or shipped names; default %(default)s)")
    t.add_argument("--workdir", default="data/transfer",
                   help="folder for the LAMMPS runs (default %(default)s)")


def add_fit_arguments(f: argparse.ArgumentParser) -> None:
    """Arguments shared by ``insitu train fit`` and ``insitu train crystal``."""
    f.add_argument("--data", default="data/crystal.h5",
                   help="dataset from `insitu train data` (default %(default)s)")
    f.add_argument("--descriptor", choices=("nm", "boo"), default="nm",
                   help="nm: Neighbors Map + paper CNN; boo: Steinhardt q_l + MLP")
    f.add_argument("--out", default=None,
                   help="ONNX output (default models/crystal-<descriptor>.onnx)")
    f.add_argument("--epochs", type=int, default=10)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threshold", type=float, default=0.5, help="confidence threshold")
    f.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    f.add_argument("--max-train", type=int, default=None, help="cap on training atoms")
    f.add_argument("--batch-size", type=int, default=256)
    f.add_argument("--lr", type=float, default=2e-3)
    f.add_argument("--no-card", action="store_true", help="do not write the model card .md")
    f.add_argument("--quiet", action="store_true", help="no progress bars")


def _data(args: argparse.Namespace) -> int:
    from insitu.training.datagen import default_descriptors, generate_crystal_dataset

    keys = tuple(k.strip() for k in args.descriptors.split(",") if k.strip())
    t0 = time.time()
    out = generate_crystal_dataset(args.out, workdir=args.workdir,
                                   materials=args.materials.split(","),
                                   descriptors=default_descriptors(keys),
                                   ramp_ps=args.ramp_ps, scale_jitter=args.scale_jitter,
                                   seed=args.seed, progress=not args.quiet)
    print(f"wrote {out} in {time.time() - t0:.0f} s")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from insitu.training.train import fit_from_hdf5

    t0 = time.time()
    out, report = fit_from_hdf5(args.data, args.descriptor, out=args.out, epochs=args.epochs,
                                seed=args.seed, threshold=args.threshold,
                                max_train=args.max_train, batch_size=args.batch_size,
                                lr=args.lr, threads=args.threads, card=not args.no_card,
                                progress=not args.quiet,
                                command=" ".join(["insitu"] + sys.argv[1:]))
    if "tables" in report:
        print(report["tables"]["markdown"])
    print(f"wrote {out}: validation accuracy {report['val_accuracy']:.4f}, "
          f"{report['n_train']} training / {report['n_val']} validation atoms, "
          f"{time.time() - t0:.0f} s")
    return 0


def _crystal(args: argparse.Namespace) -> int:
    import h5py

    from insitu.training.datagen import (
        add_descriptor,
        default_descriptors,
        generate_crystal_dataset,
    )

    data = Path(args.data)
    descriptors = default_descriptors((args.descriptor,))
    if not data.is_file():
        generate_crystal_dataset(data, descriptors=descriptors, scale_jitter=args.scale_jitter,
                                 seed=0, progress=not args.quiet)
    else:
        with h5py.File(data, "r") as h5:
            have = args.descriptor in h5
        if not have:
            add_descriptor(data, args.descriptor, descriptors[args.descriptor],
                           progress=not args.quiet)
    return _fit(args)


def _card(args: argparse.Namespace) -> int:
    from insitu.training.report import rebuild_card

    extra = Path(args.extra).read_text() if args.extra else ""
    print(rebuild_card(args.model, args.data, args.command, extra))
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from insitu.resources import model_path
    from insitu.training.transfer import transfer_table

    for row in transfer_table([model_path(m) for m in args.models], args.workdir):
        print(row, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand. A missing ``torch`` (fit, crystal) or ``tqdm`` raises
    ModuleNotFoundError before any work: ``insitu`` then names the extra to install."""
    if args.train_command in ("fit", "crystal", "card"):
        import torch  # noqa: F401 - fail now, not after the dataset was generated
    import tqdm  # noqa: F401 - every subcommand reports progress with it

    commands = {"data": _data, "fit": _fit, "crystal": _crystal, "card": _card,
                "transfer": _transfer}
    try:
        return commands[args.train_command](args)
    except FileNotFoundError as exc:  # a dataset or LAMMPS input that is not there
        print(f"insitu train {args.train_command}: {exc}", file=sys.stderr)
        return 2
