"""``insitu train`` and ``insitu classify`` (wired into :mod:`insitu.cli`).

``add_train_parser(subparsers)`` / ``add_classify_parser(subparsers)`` register the commands
and set ``func`` to :func:`cmd_train` / :func:`cmd_classify` (each returns an exit code).
``insitu classify`` runs no torch; ``insitu train`` needs the ``training`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- classify
def add_classify_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "classify", help="label the atoms of a LAMMPS dump with a trained model (offline)",
        description="Classify every atom of a LAMMPS text dump with an insitu ONNX model, "
        "through the same code path as the in-situ analysis (descriptor on the atoms plus "
        "their periodic images, batched onnxruntime inference). Prints per-frame fractions.")
    p.add_argument("dump", help="LAMMPS text dump (dump atom / dump custom with id type x y z)")
    p.add_argument("--model", "-m", required=True, help="insitu .onnx model "
                   "(e.g. models/crystal-nm.onnx)")
    p.add_argument("--output", "-o", help="write a dump with id type x y z label confidence")
    p.add_argument("--frames", default="all", choices=("all", "last", "first"),
                   help="which frames of the dump to classify (default all)")
    p.add_argument("--threshold", type=float, default=None,
                   help="confidence threshold (default: the model's)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--batch-size", type=int, default=1024, help="atoms per inference batch")
    p.add_argument("--json", action="store_true", help="print one JSON object per frame")
    p.set_defaults(func=cmd_classify)
    return p


def classify_frame(classifier, frame, threshold=None):
    """Labels of one periodic frame through the in-situ per-rank pipeline: the atoms plus
    their periodic images form the open point set a rank would see. Returns a
    :class:`insitu.runtime.ClassificationResult`."""
    from .runtime import ClassificationResult, _frame_points

    classifier.check_types(frame.types)
    thr = classifier.confidence_threshold if threshold is None else float(threshold)
    n = len(frame)
    proba = np.zeros((n, len(classifier.classes)), np.float32)
    if n:
        points, types, ids = _frame_points(frame, float(classifier.descriptor.required_cutoff))
        for start, stop, feats in classifier.descriptor.iter_open(points, types, ids, n,
                                                                  classifier.batch_size):
            proba[start:stop] = classifier.predict_proba(feats)
    return ClassificationResult.from_probabilities(classifier.classes, proba, thr)


def _write_labels(fh, frame, result) -> None:
    from .frame import Frame  # noqa: F401 - documentation of the type

    n = len(frame)
    c = frame.cell
    fh.write(f"ITEM: TIMESTEP\n{frame.step if frame.step is not None else 0}\n")
    fh.write(f"ITEM: NUMBER OF ATOMS\n{n}\n")
    pbc = " ".join("pp" if p else "ff" for p in frame.pbc)
    if abs(c[1, 0]) + abs(c[2, 0]) + abs(c[2, 1]) > 0:
        xy, xz, yz = c[1, 0], c[2, 0], c[2, 1]
        xlo_b = min(0.0, xy, xz, xy + xz)
        xhi_b = c[0, 0] + max(0.0, xy, xz, xy + xz)
        ylo_b = min(0.0, yz)
        yhi_b = c[1, 1] + max(0.0, yz)
        fh.write(f"ITEM: BOX BOUNDS xy xz yz {pbc}\n{xlo_b} {xhi_b} {xy}\n{ylo_b} {yhi_b} {xz}\n"
                 f"0 {c[2, 2]} {yz}\n")
    else:
        fh.write(f"ITEM: BOX BOUNDS {pbc}\n0 {c[0, 0]}\n0 {c[1, 1]}\n0 {c[2, 2]}\n")
    fh.write("ITEM: ATOMS id type x y z label confidence\n")
    data = np.column_stack([frame.ids, frame.types, frame.positions,
                            result.label_index, result.confidence])
    np.savetxt(fh, data, fmt=["%d", "%d", "%.6f", "%.6f", "%.6f", "%d", "%.5f"])


def cmd_classify(args) -> int:
    from .frame import iter_lammps_dump
    from .runtime import Classifier

    try:
        clf = Classifier.load(args.model, n_threads=args.threads, batch_size=args.batch_size)
    except (FileNotFoundError, ValueError) as exc:
        print(f"insitu classify: {exc}", file=sys.stderr)
        return 2
    dump = Path(args.dump)
    if not dump.is_file():
        print(f"insitu classify: dump file not found: {dump}", file=sys.stderr)
        return 2
    frames = iter_lammps_dump(dump)
    if args.frames == "last":
        last = None
        for last in frames:  # noqa: B007
            pass
        frames = [] if last is None else [last]
    elif args.frames == "first":
        frames = [next(iter(frames))]
    out = open(args.output, "w") if args.output else None  # noqa: SIM115
    n_frames = 0
    try:
        if not args.json:
            thr = clf.confidence_threshold if args.threshold is None else args.threshold
            print(f"# model {clf.path} ({clf.sha256[:12]}), classes {clf.classes}, "
                  f"threshold {thr}")
            print("# step natoms " + " ".join(clf.classes + ["unknown"]) + " mean_confidence"
                  " atoms/s")
        for frame in frames:
            t0 = time.perf_counter()
            try:
                res = classify_frame(clf, frame, args.threshold)
            except ValueError as exc:
                print(f"insitu classify: {exc}", file=sys.stderr)
                return 2
            dt = time.perf_counter() - t0
            fr = res.fractions()
            n_frames += 1
            if args.json:
                print(json.dumps({"step": frame.step, "natoms": len(frame), "fractions": fr,
                                  "mean_confidence": float(res.confidence.mean())
                                  if len(frame) else 0.0}))
            else:
                print(f"{frame.step} {len(frame)} "
                      + " ".join(f"{fr[c]:.4f}" for c in clf.classes + ["unknown"])
                      + f" {float(res.confidence.mean()) if len(frame) else 0.0:.4f}"
                      + f" {len(frame) / max(dt, 1e-9):.0f}")
            if out is not None:
                _write_labels(out, frame, res)
    finally:
        if out is not None:
            out.close()
    if n_frames == 0:
        print(f"insitu classify: no frames in {dump}", file=sys.stderr)
        return 2
    if out is not None and not args.json:
        print(f"# labels written to {args.output} (label = index into the classes above, "
              f"-1 unknown)")
    return 0


# ----------------------------------------------------------------------------- train
def add_train_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="generate training data, fit and export classifiers (needs torch)",
        description="Training pipeline: `data` runs the LAMMPS ramps and writes descriptors "
        "to HDF5, `fit` trains a CNN (Neighbors Map) or MLP (BOO) and exports ONNX with its "
        "metadata, `crystal` does both for the shipped crystal models.")
    sub = p.add_subparsers(dest="train_command", metavar="{data,fit,crystal}")

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
    _fit_args(f)
    f.add_argument("--data", default="data/crystal.h5", help="dataset from `insitu train data`")

    c = sub.add_parser("crystal", help="retrain a shipped crystal model from scratch "
                       "(data if missing, then fit)")
    _fit_args(c)
    c.add_argument("--data", default="data/crystal.h5")
    c.add_argument("--scale-jitter", type=float, default=0.1)
    p.set_defaults(func=cmd_train, _train_parser=p)
    return p


def _fit_args(f):
    f.add_argument("--descriptor", choices=("nm", "boo"), default="nm",
                   help="nm: Neighbors Map + paper CNN; boo: Steinhardt q_l + MLP")
    f.add_argument("--out", default=None, help="ONNX output (default models/crystal-<d>.onnx)")
    f.add_argument("--epochs", type=int, default=10)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threshold", type=float, default=0.5, help="confidence threshold")
    f.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    f.add_argument("--max-train", type=int, default=None, help="cap on training atoms")
    f.add_argument("--batch-size", type=int, default=256)
    f.add_argument("--lr", type=float, default=2e-3)
    f.add_argument("--no-card", action="store_true", help="do not write the model card .md")
    f.add_argument("--quiet", action="store_true", help="no progress bars")


def _fit(args) -> int:
    from .training.train import fit_from_hdf5

    t0 = time.time()
    out, report = fit_from_hdf5(args.data, args.descriptor, out=args.out, epochs=args.epochs,
                                seed=args.seed, threshold=args.threshold,
                                max_train=args.max_train, batch_size=args.batch_size,
                                lr=args.lr, threads=args.threads, card=not args.no_card,
                                progress=not args.quiet,
                                command=" ".join(["insitu"] + sys.argv[1:]))
    print(report["tables"]["markdown"] if "tables" in report else "")
    print(f"wrote {out}: validation accuracy {report['val_accuracy']:.4f}, "
          f"{report['n_train']} training / {report['n_val']} validation atoms, "
          f"{time.time() - t0:.0f} s")
    return 0


def cmd_train(args) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("insitu train needs PyTorch: pip install 'insitu[training]'", file=sys.stderr)
        return 2
    cmd = getattr(args, "train_command", None)
    if cmd is None:
        args._train_parser.print_help()
        return 2
    if cmd == "data":
        from .training.datagen import default_descriptors, generate_crystal_dataset
        keys = tuple(k.strip() for k in args.descriptors.split(",") if k.strip())
        t0 = time.time()
        out = generate_crystal_dataset(args.out, workdir=args.workdir,
                                       materials=args.materials.split(","),
                                       descriptors=default_descriptors(keys),
                                       ramp_ps=args.ramp_ps, scale_jitter=args.scale_jitter,
                                       seed=args.seed, progress=not args.quiet)
        print(f"wrote {out} in {time.time() - t0:.0f} s")
        return 0
    if cmd == "fit":
        return _fit(args)
    if cmd == "crystal":
        import h5py

        from .training.datagen import (
            add_descriptor,
            default_descriptors,
            generate_crystal_dataset,
        )
        data = Path(args.data)
        if not data.is_file():
            generate_crystal_dataset(data, descriptors=default_descriptors((args.descriptor,)),
                                     scale_jitter=args.scale_jitter, seed=0,
                                     progress=not args.quiet)
        else:
            with h5py.File(data, "r") as h5:
                have = args.descriptor in h5
            if not have:
                add_descriptor(data, args.descriptor,
                               default_descriptors((args.descriptor,))[args.descriptor],
                               progress=not args.quiet)
        return _fit(args)
    return 2


def main(argv=None) -> int:
    """Stand-alone entry (``python -m insitu.classify_cli ...``) until wired into the CLI."""
    parser = argparse.ArgumentParser(prog="insitu")
    sub = parser.add_subparsers(dest="command")
    add_train_parser(sub)
    add_classify_parser(sub)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
