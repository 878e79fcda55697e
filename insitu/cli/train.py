"""``insitu train data|fit|crystal``: generate training data, fit and export classifiers.

* ``data`` runs the LAMMPS ramps and writes the descriptors to HDF5;
* ``fit`` trains a CNN (Neighbors Map) or an MLP (bond-orientational order) on such a dataset
  and exports ONNX with its metadata (and a model card);
* ``crystal`` does both for the shipped crystal models (data only if missing);
* ``material`` trains a model for your own material in one command: from an element, its
  structure, a LAMMPS ``pair_style``/``pair_coeff`` and the melting point (LAMMPS generates
  the data), or from your labelled frames; writes the model, its card and the validation
  table, and exits 1 when the validation accuracy is below ``--min-accuracy``;
* ``card`` rewrites a crystal model's card from the model and its dataset;
* ``mc`` gives a trained model MC dropout (mask input, MI threshold from validation data)
  and, with ``--data``, its feature-space novelty (``insitu.training.novelty``);
* ``consensus`` sets (or removes) a model's neighbour consensus: labels from the
  probabilities averaged over each atom's first shell (``insitu.model.consensus``);
* ``head`` lets the MC-dropout passes of a one-layer head run in numba
  (``insitu.model.mc_head``; models exported by this version have it already);
* ``screen`` puts a light network on the same features in front of a model: its label
  stands where it is nearly sure, the model's network labels the rest
  (``insitu.model.screen``; the gate is chosen on validation data);
* ``transfer`` checks the crystal models on fcc Ni, fcc Cu and hcp Mg beside LAMMPS cna/atom
  (the near-transition cards report the held-out Ni, Ag and Zr in full).

Classes follow the data (no hcp atoms: no hcp class); progress bars unless ``--quiet``;
every random choice comes from ``--seed``.

Needs the ``training`` extra (PyTorch): ``pip install 'insitu[training]'``. The ramp models
are trained by ``insitu ramp train``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from insitu.cli.train_material import add_fit_arguments, add_material_arguments, run_material

HELP = "generate training data, fit and export classifiers (needs the training extra)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``data``, ``fit`` and ``crystal`` subcommands and their arguments."""
    sub = parser.add_subparsers(dest="train_command",
                                metavar="{data,fit,crystal,material,card,transfer,mc}",
                                required=True)
    d = sub.add_parser("data", help="generate the crystal/liquid dataset with LAMMPS")
    d.add_argument("--out", default="data/crystal.h5", help="HDF5 output (default %(default)s)")
    d.add_argument("--workdir", default=None, help="LAMMPS run folder (default: next to --out)")
    d.add_argument("--descriptors", default="nm,boo", help="comma list of nm,boo")
    d.add_argument("--ramp-ps", type=float, default=10.0, help="ramp length in ps")
    d.add_argument("--scale-jitter", type=float, default=0.1,
                   help="isotropic rescaling U(1-j,1+j) of training copies (augmentation)")
    d.add_argument("--materials", default=None,
                   help="comma list: paper protocol Fe,Al,Zr,Si (the default); transition "
                   "protocol the training elements (default Al,Cu,Au,Fe,Mg,Si; the others "
                   "of insitu.training.transition_runs.TRANSITION_MATERIALS, e.g. SiT2 for "
                   "Tersoff's T2 Si; an unknown name is refused with the full list)")
    d.add_argument("--heldout", default=None,
                   help="transition protocol: comma list of held-out elements, in neither "
                   "training nor validation (default Ni,Ag,Zr)")
    d.add_argument("--seed", type=int, default=0,
                   help="seed of the velocities and removed atoms (default %(default)s)")
    d.add_argument("--protocol", choices=("paper", "transition"), default="paper",
                   help="paper: ramps to 2/3 T_m and hot liquids (Sec. 3.1); transition: "
                   "crystals heated until they melt and liquids quenched until they "
                   "crystallise, labelled by evidence, held-out elements in "
                   "<out>_heldout.h5 (the shipped crystal models)")
    d.add_argument("--workers", type=int, default=2,
                   help="LAMMPS runs at a time (transition protocol; default %(default)s)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")

    f = sub.add_parser("fit", help="train a classifier on a dataset and export it to ONNX")
    add_fit_arguments(f)

    c = sub.add_parser("crystal", help="retrain a shipped crystal model from scratch "
                       "(data if missing, then fit)")
    add_fit_arguments(c)
    for p in (f, c):
        p.add_argument("--arch", default=None, help="network: for nm paper (default: Allera "
                       "et al.'s CNN), stride, pool, pstride, patch, stridepool, small, small64, "
                       "lite, lite64, stride64, tiny (benchmarks/nm_pareto.md); for boo "
                       "mlp-last (default: dropout before the output layer only), mlp")
        p.add_argument("--n-grid", type=int, default=None, help="nm: train on the stored "
                       "maps cropped to this n_G (exact; insitu/training/nm_crop.py)")
        p.add_argument("--teacher", help="MODEL.onnx whose soft labels to distil (distill.py)")
        p.add_argument("--distill-alpha", type=float, help="teacher weight A (default 0.7)")
        p.add_argument("--distill-temperature", type=float, help="TAU (default 2)")
    c.add_argument("--scale-jitter", type=float, default=0.1,
                   help="augmentation of the dataset, when it must be generated")

    m = sub.add_parser("material", help="train a model for your own material: LAMMPS data from "
                       "an element, structure, potential and melting point, or your labelled "
                       "frames")
    add_material_arguments(m)

    u = sub.add_parser("mc", help="MC dropout for a trained model: re-export it with the "
                       "dropout-mask input from its own weights, set its MI threshold "
                       "(and with --data its novelty threshold) on validation data")
    u.add_argument("model", help="the .onnx model (rewritten in place)")
    u.add_argument("--data", default=None, help="its crystal dataset (validation split)")
    u.add_argument("--ramp", default=None, help="or its ramp system (ni, cuzr) ...")
    u.add_argument("--ramp-data", default=None, help="... and that ramp's output folder with "
                   "snapshots/ (default data/<system>_ramp)")
    u.add_argument("--passes", type=int, default=None,
                   help="default MC passes T stored in the model (default 20)")
    u.add_argument("--percentile", type=float, default=99.0,
                   help="MI threshold: at least this percentile of the validation MI, "
                   "raised to keep the validation accuracy within 0.2 points (default 99)")

    k = sub.add_parser("card", help="rewrite a crystal model's card from model + dataset")
    k.add_argument("model", help="the .onnx model whose card (.md beside it) is rewritten")
    k.add_argument("--data", default="data/crystal.h5", help="its dataset (default %(default)s)")
    k.add_argument("--command", default=None, dest="retrain_command",
                   help="retraining command shown in the card")
    k.add_argument("--extra", default=None, help="markdown file appended before 'Retrain' "
                   "(default: <model>.uncertainty.md beside the model, if any)")

    s = sub.add_parser("consensus", help="label each atom from the probabilities averaged "
                       "over it and its nearest neighbours (rewrites the model's metadata)")
    s.add_argument("model", help="the .onnx model (rewritten in place)")
    s.add_argument("--neighbors", type=int, default=12, help="k nearest (default 12)")
    s.add_argument("--cutoff", type=float, default=4.0, help="within r_c A (default 4)")
    s.add_argument("--off", action="store_true", help="remove the rule: per-atom labels")

    r = sub.add_parser("screen", help="put a light network in front of a model: its label "
                       "stands where it is sure, the model labels the rest")
    r.add_argument("model", help="the .onnx model (its metadata rewritten in place)")
    r.add_argument("screen", help="the light .onnx network on the same features (copied "
                   "beside the model as MODEL.screen.onnx)")
    r.add_argument("--data", required=True, help="the dataset (validation split) the gate is "
                   "chosen on")
    r.add_argument("--max-loss", type=float, default=None,
                   help="validation accuracy the screen may cost, in points (default 0.1)")
    h = sub.add_parser("head", help="let the MC-dropout passes of a model whose head is one "
                       "dense layer run in one numba kernel (adds graph outputs; rewrites the "
                       "model, metadata kept; models exported by this version have them)")
    h.add_argument("model", help="the .onnx model (rewritten in place)")

    t = sub.add_parser("transfer", help="the crystal models on Ni, Cu and Mg (short NPT "
                       "runs; only Ni is held out of the shipped models' training)")
    t.add_argument("--models", nargs="*", default=["crystal-nm", "crystal-boo"],
                   help="models (paths or shipped names; default %(default)s)")
    t.add_argument("--workdir", default="data/transfer",
                   help="folder for the LAMMPS runs (default %(default)s)")


def _data(args: argparse.Namespace) -> int:
    from insitu.training.datagen import default_descriptors, generate_crystal_dataset
    from insitu.training.material import compact_classes

    keys = tuple(k.strip() for k in args.descriptors.split(",") if k.strip())
    t0 = time.time()
    if args.protocol == "transition":
        from insitu.training.transition_dataset import generate_transition_dataset
        from insitu.training.transition_runs import element_lists

        train, heldout = element_lists(args.materials, args.heldout)
        out, held = generate_transition_dataset(
            args.out, workdir=args.workdir, descriptors=default_descriptors(keys),
            train_elements=train, heldout_elements=heldout,
            scale_jitter=args.scale_jitter, seed=args.seed, workers=args.workers,
            progress=not args.quiet)
        print(f"wrote {out} and {held} in {time.time() - t0:.0f} s")
        return 0
    out = generate_crystal_dataset(args.out, workdir=args.workdir,
                                   materials=(args.materials or "Fe,Al,Zr,Si").split(","),
                                   descriptors=default_descriptors(keys),
                                   ramp_ps=args.ramp_ps, scale_jitter=args.scale_jitter,
                                   seed=args.seed, progress=not args.quiet)
    classes = compact_classes(out)  # classes follow the data
    print(f"wrote {out} (classes {classes}) in {time.time() - t0:.0f} s")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from insitu.training.material import compact_classes
    from insitu.training.train import fit_from_hdf5

    if Path(args.data).is_file():
        compact_classes(args.data)  # classes follow the data (also for older datasets)
        transition = dataset_protocol(args.data) == "transition"
    else:
        transition = False
    t0 = time.time()
    out, report = fit_from_hdf5(args.data, args.descriptor, out=args.out, epochs=args.epochs,
                                seed=args.seed, threshold=args.threshold,
                                max_train=args.max_train, batch_size=args.batch_size,
                                lr=args.lr, threads=args.threads,
                                class_weights=(None if args.class_weights == "none"
                                               else args.class_weights),
                                card=not args.no_card and not transition,
                                progress=not args.quiet, arch=args.arch, n_grid=args.n_grid,
                                teacher=args.teacher, distill_alpha=args.distill_alpha,
                                distill_temperature=args.distill_temperature,
                                command=" ".join(["insitu"] + sys.argv[1:]))
    if "tables" in report:
        print(report["tables"]["markdown"])
    if transition and not args.no_card:  # the near-transition card, from the datasets
        from insitu.training.report import rebuild_card
        print(f"card {rebuild_card(out, args.data)}")
    print(f"wrote {out}: validation accuracy {report['val_accuracy']:.4f}, "
          f"{report['n_train']} training / {report['n_val']} validation atoms, "
          f"{time.time() - t0:.0f} s")
    return 0


def dataset_protocol(path: str | Path) -> str:
    """The protocol of a crystal dataset (``paper`` or ``transition``); a dataset without
    a descriptor fingerprint is refused (its features may come from older code)."""
    import json

    import h5py

    from insitu.descriptors.fingerprint import DescriptorMismatch

    with h5py.File(path, "r") as h5:
        prov = json.loads(h5.attrs.get("provenance", "{}"))
        missing = [k for k in ("nm", "boo") if k in h5 and "fingerprint" not in h5[k].attrs]
    if missing:
        raise DescriptorMismatch(f"{path}: features {missing} record no descriptor "
                                 "fingerprint (older descriptor code?): regenerate the "
                                 "dataset with `insitu train data`")
    return prov.get("protocol", "paper")


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


def _mc(args: argparse.Namespace) -> int:
    from insitu.training import mc_calibration as mc
    from insitu.training import novelty

    if (args.data is None) == (args.ramp is None):
        print("insitu train mc: give --data DATASET or --ramp SYSTEM", file=sys.stderr)
        return 2
    mc.reexport_with_mc(args.model, passes=args.passes or mc.DEFAULT_MC_PASSES)
    if args.data:
        cal = mc.calibrate_on_dataset(args.model, args.data, args.percentile)
        nov = novelty.calibrate_novelty_on_dataset(args.model, args.data)
        print(f"{args.model}: novelty threshold {nov['threshold']:.4g}: {nov['rule']}")
    else:
        cal = mc.calibrate_on_ramp(args.model, args.ramp,
                                   args.ramp_data or f"data/{args.ramp}_ramp",
                                   percentile=args.percentile)
    print(f"{args.model}: MC dropout T={cal['passes']}, MI threshold "
          f"{cal['mi_threshold']:.4f} bits: {cal['rule']} ({cal['atoms']} atoms, "
          f"{100 * cal['fraction_above']:.2f} % above it)")
    return 0


def _card(args: argparse.Namespace) -> int:
    from insitu.training.report import rebuild_card

    extra = Path(args.extra).read_text() if args.extra else ""
    print(rebuild_card(args.model, args.data, args.retrain_command, extra))
    return 0


def _consensus(args: argparse.Namespace) -> int:
    from insitu.model.consensus import CONSENSUS_METADATA, Consensus
    from insitu.training.export import update_metadata

    rule = None if args.off else Consensus(args.neighbors, args.cutoff)
    update_metadata(args.model, {CONSENSUS_METADATA: rule and rule.to_metadata()})
    print(f"{args.model}: " + (rule.describe() if rule else "per-atom labels (no consensus)"))
    return 0


def _screen(args: argparse.Namespace) -> int:
    from insitu.training.screen import MAX_SCREEN_LOSS, attach_screen

    loss = MAX_SCREEN_LOSS if args.max_loss is None else args.max_loss / 100.0
    try:
        cal = attach_screen(args.model, args.screen, args.data, loss)
    except ValueError as exc:  # other classes or descriptor, or no gate qualifies
        print(f"insitu train screen: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model}: screen {Path(args.model).stem}.screen.onnx settles "
          f"{100 * cal['fraction_screened']:.1f} % of the validation atoms; accuracy "
          f"{100 * cal['cascade_accuracy']:.2f} % (model alone "
          f"{100 * cal['model_accuracy']:.2f} %, screen alone "
          f"{100 * cal['screen_accuracy']:.2f} %)")
    return 0


def _head(args: argparse.Namespace) -> int:
    import shutil

    from insitu.model import Classifier, ModelError
    from insitu.training.head_outputs import expose_head_file

    path = Path(args.model)
    trial = path.with_name(f".{path.stem}.head.onnx")
    try:
        Classifier.load(path, screen=False)  # an insitu model, or a clear error
        shutil.copyfile(path, trial)
        if not expose_head_file(trial):
            print(f"{path}: nothing to do (no one-layer dropout head, or exposed already)")
            return 0
        head = Classifier.load(trial, screen=False).head  # checked against the graph
        trial.replace(path)
    except ModelError as exc:
        print(f"insitu train head: {exc}", file=sys.stderr)
        return 1
    finally:
        trial.unlink(missing_ok=True)
    print(f"{path}: MC-dropout head ({head.weight.shape[0]} x {head.weight.shape[1]}) "
          "exposed; its passes now run in numba, checked against the graph")
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
    if args.train_command in ("fit", "crystal", "card", "material", "mc"):
        import torch  # noqa: F401 - fail now, not after the dataset was generated
    import tqdm  # noqa: F401 - every subcommand reports progress with it

    from insitu.descriptors.fingerprint import DescriptorMismatch

    commands = {"data": _data, "fit": _fit, "crystal": _crystal, "card": _card, "mc": _mc,
                "transfer": _transfer, "material": run_material, "consensus": _consensus,
                "screen": _screen, "head": _head}
    try:
        return commands[args.train_command](args)
    except FileNotFoundError as exc:  # a dataset or LAMMPS input that is not there
        print(f"insitu train {args.train_command}: {exc}", file=sys.stderr)
        return 2
    except DescriptorMismatch as exc:  # features of other descriptor code
        print(f"insitu train {args.train_command}: {exc}", file=sys.stderr)
        return 2
