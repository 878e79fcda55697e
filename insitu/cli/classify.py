"""``insitu classify DUMP --model MODEL``: label the atoms of a LAMMPS dump offline.

Every atom of a LAMMPS text dump is classified with an insitu ONNX model through the same code
path as the in-situ analysis (``Classifier.classify``: descriptor on the atoms plus their
periodic images, batched onnxruntime inference). Prints the per-frame class fractions; with
``--output`` also writes a dump with the input's columns and ``label`` (index into the model's
classes, -1 unknown), ``confidence`` and ``StructureType`` (the class name: OVITO's LAMMPS
dump reader maps it to its Structure Type property, with named types), and with MC dropout
(``--mc-passes``, default the model's) ``mi``, the mutual information in bits. Other formats
(extended XYZ, POSCAR, ...) are read through ASE when it is installed. Needs no torch.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

HELP = "label the atoms of a LAMMPS dump with a trained model (offline)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu classify``."""
    parser.add_argument("dump", help="LAMMPS text dump (dump atom / dump custom with id, type "
                        "or element, x y z; plain or gzipped), or any file ASE reads "
                        "(extended XYZ ...)")
    parser.add_argument("--model", "-m", required=True,
                        help="insitu .onnx model: a file, or the name of a shipped model "
                        "(crystal-nm, crystal-boo, ...)")
    parser.add_argument("--output", "-o", help="write a LAMMPS dump with the columns label, "
                        "confidence and StructureType (class name, for OVITO) added")
    parser.add_argument("--frames", default="all", choices=("all", "last", "first"),
                        help="which frames of the dump to classify (default all)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="confidence threshold (default: the model's)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--batch-size", type=int, default=1024,
                        help="atoms per inference batch")
    parser.add_argument("--json", action="store_true", help="print one JSON object per frame")
    parser.add_argument("--mc-passes", type=int, default=None,
                        help="MC-dropout passes T (default: the model's; 1: dropout off). "
                        "With T > 1 the output dump gets the column mi (mutual "
                        "information, bits) and atoms above the model's MI threshold are "
                        "unknown")
    parser.add_argument("--no-screen", action="store_true",
                        help="run the model's own network on every atom, not its screening "
                        "network first (insitu.model.screen)")


def select_frames(frames: Iterable, which: str) -> Iterator:
    """All frames, only the first or only the last (the iterator is consumed lazily)."""
    if which == "first":
        return itertools.islice(frames, 1)
    if which == "last":
        return iter(collections.deque(frames, maxlen=1))
    return iter(frames)


def resolve_model(name: str) -> Path:
    """``name`` as a path when it is one (or names no shipped model), else the shipped model."""
    path = Path(name)
    if path.is_file() or path.parent != Path("."):
        return path
    from insitu.resources import model_path

    try:
        shipped = model_path(name)
    except FileNotFoundError:  # no shipped models in this installation
        return path
    return shipped if shipped.is_file() else path


def _frame_line(frame, result, classes: list[str], seconds: float, as_json: bool) -> str:
    n = len(frame)
    fractions = result.fractions()
    mean_conf = float(result.confidence.mean()) if n else 0.0
    mean_mi = float(result.mutual_information.mean()) if n else 0.0
    if as_json:
        return json.dumps({"step": frame.step, "natoms": n, "fractions": fractions,
                           "mean_confidence": mean_conf, "mean_mi": mean_mi,
                           "uncertain_fraction": float(result.uncertain.mean()) if n else 0.0,
                           "novel_fraction": float(result.novel.mean()) if n else 0.0})
    return (f"{frame.step} {n} " + " ".join(f"{fractions[c]:.4f}" for c in classes)
            + f" {mean_conf:.4f} {n / max(seconds, 1e-9):.0f}"
            + (f" {mean_mi:.4f}" if result.mc_passes > 1 else ""))


def run(args: argparse.Namespace) -> int:
    """Classify the selected frames; 2 on a missing/unusable model or dump."""
    from insitu.io.ase_bridge import iter_frames
    from insitu.io.lammps_dump import write_lammps_dump
    from insitu.model import Classifier, ModelError

    try:
        clf = Classifier.load(resolve_model(args.model), n_threads=args.threads,
                              batch_size=args.batch_size, mc_passes=args.mc_passes,
                              screen=not args.no_screen)
    except (FileNotFoundError, ModelError) as exc:
        print(f"insitu classify: {exc}", file=sys.stderr)
        return 2
    dump = Path(args.dump)
    if not dump.is_file():
        print(f"insitu classify: dump file not found: {dump}", file=sys.stderr)
        return 2
    classes = list(clf.classes) + ["unknown"]
    if not args.json:
        thr = clf.confidence_threshold if args.threshold is None else args.threshold
        print(f"# model {clf.path} ({clf.sha256[:12]}), classes {clf.classes}, "
              f"threshold {thr}")
        mc = (f" mean_mi (MC dropout T={clf.mc_passes}, MI threshold {clf.mi_threshold:.4g} "
              "bits)" if clf.mc_passes > 1 else "")
        print("# step natoms " + " ".join(classes) + " mean_confidence atoms/s" + mc)
    n_frames = 0
    out = open(args.output, "w") if args.output else None  # noqa: SIM115 - closed below
    try:
        for frame in select_frames(iter_frames(dump, clf), args.frames):
            t0 = time.perf_counter()
            try:
                result = clf.classify(frame, threshold=args.threshold)
            except ValueError as exc:
                print(f"insitu classify: {exc}", file=sys.stderr)
                return 2
            seconds = time.perf_counter() - t0
            n_frames += 1
            print(_frame_line(frame, result, classes, seconds, args.json))
            if out is not None:
                # the input's own columns are kept, then the labels
                columns = {k: v for k, v in frame.info.get("columns", {}).items()
                           if k not in ("label", "confidence", "StructureType", "mi")}
                columns.update(label=result.label_index, confidence=result.confidence,
                               StructureType=result.labels)
                if result.mc_passes > 1:
                    columns["mi"] = result.mutual_information
                write_lammps_dump(out, frame, columns,
                                  formats={"confidence": "%.5f", "mi": "%.5f"})
    finally:
        if out is not None:
            out.close()
    if n_frames == 0:
        print(f"insitu classify: no frames in {dump}", file=sys.stderr)
        return 2
    if out is not None and not args.json:
        print(f"# labels written to {args.output} (label = index into the classes above, "
              "-1 unknown)")
    return 0
