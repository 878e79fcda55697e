"""Neighbors Map networks: accuracy against speed (the Pareto table of issue 13).

    .venv/bin/python benchmarks/nm_pareto.py --cand-dir DIR [--data data/crystal_v3.h5]
        [--train ARCH ...] [--epochs 10] [--int8] [--core 0]

For every ``DIR/nm-<arch>.onnx`` (trained with ``insitu train fit --data DATA --descriptor
nm --arch <arch> --seed 1 --out DIR/nm-<arch>.onnx``; ``--train`` runs that command for
the architectures named) and the shipped ``crystal-nm`` (the paper CNN): trainable
parameters, MFLOP per atom of one pass (2 x multiply-adds of the convolutions and dense
layers, counted on the torch net), model-only throughput (onnxruntime, 1 intra-op
thread, this process pinned to one core; features of a thermal fcc crystal precomputed)
with one pass and with the model's MC-dropout passes T, and the accuracy on the dataset's
validation split (argmax, one pass and T passes). Near-transition accuracy on ``--near``
(default: the first ``data/*near*.h5``, else ``data/transition_heldout.h5``, the held-out
near-transition set of ``insitu train transition``; ``--near-atoms`` of its atoms, seeded).
``--int8`` adds, per network, a static int8 quantisation (QDQ, per-channel weights)
calibrated on training maps, with its accuracy and its agreement with fp32, atom by atom.
With ``--shipped`` and a shipped model that has a screening network
(:mod:`insitu.model.screen`), two rows: the paper CNN alone (``screen=False``) and the
shipped pair, whose parameters are the two networks' and whose MFLOP per atom is the
screen's plus the paper CNN's times the fraction of the speed maps the screen passes on.

Writes ``--table`` (default benchmarks/nm_pareto.md) and results.json under ``--key``
(default "nm_pareto"); without candidates it says so and writes nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from _bench import best_rate, finish, machine_state, merge_results, pin

from insitu.model import Classifier
from insitu.resources import model_path
from insitu.testing import lattice, thermal

HERE = Path(__file__).resolve().parent
TABLE = HERE / "nm_pareto.md"


def arch_of(clf: Classifier) -> str:
    arch = (clf.metadata.get("training") or {}).get("arch", "cnn")
    return "paper" if arch == "cnn" else arch


def flops_and_params(clf: Classifier, passed_on: float = 1.0) -> tuple[float, int]:
    """(MFLOP per atom of one pass, trainable parameters) of the model's architecture; with
    a screen, the screen's plus the model's for the fraction ``passed_on`` of the atoms."""
    from insitu.training.nets import build_model, count_parameters, multiply_adds

    net = build_model(arch_of(clf), clf.feature_shape, len(clf.classes))
    mflop, params = 2e-6 * multiply_adds(net, clf.feature_shape), count_parameters(net)
    if clf.screen is not None:
        screen_mflop, screen_params = flops_and_params(clf.screen)
        return screen_mflop + passed_on * mflop, params + screen_params
    return mflop, params


def load_split(path: Path, split: int | None, clf: Classifier, limit: int | None = None):
    """(maps, labels in ``clf.classes`` order) of a dataset's split (None: all atoms), the
    maps cropped to the model's n_G when stored larger (insitu.training.nm_crop)."""
    import json

    import h5py

    from insitu.training.nm_crop import features_for

    classes = clf.classes
    with h5py.File(path, "r") as h5:
        names = json.loads(h5.attrs["classes"])
        stored = json.loads(h5["nm"].attrs["descriptor"])
        sel = np.ones(len(h5["label"]), bool) if split is None else h5["split"][...] == split
        idx = np.nonzero(sel)[0]
        if limit is not None and len(idx) > limit:
            idx = np.sort(np.random.default_rng(0).choice(idx, limit, replace=False))
        x = h5["nm"][idx] if len(idx) < len(sel) else h5["nm"][...]
        y = np.array([classes.index(names[k]) if names[k] in classes else -1
                      for k in h5["label"][idx]])
    x = features_for(x, stored, clf.descriptor, f"{path} ['nm']")
    described = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    return x[described].astype(np.float32), y[described]


def accuracy(clf: Classifier, x, y, passes: int) -> float:
    if passes > 1:
        p = clf.predict_mc(x, np.arange(1, len(x) + 1), step=0, n_passes=passes)[0]
    else:
        p = clf.predict_proba(x)
    return float((p.argmax(1) == y).mean())


def quantize(model: Path, calibration: np.ndarray, out: Path) -> Path:
    """Static int8 (QDQ, per-channel weights, uint8 activations) of ``model``, calibrated
    on ``calibration`` maps."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"features": calibration[s:s + 256]}
                                 for s in range(0, len(calibration), 256)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(model), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "Gemm",
                                                                         "MatMul"])
    return out


def train(arches, data: Path, cand_dir: Path, epochs: int) -> None:
    for arch in arches:
        cmd = [sys.executable, "-m", "insitu", "train", "fit", "--data", str(data),
               "--descriptor", "nm", "--arch", arch, "--seed", "1", "--epochs", str(epochs),
               "--threads", "1", "--quiet", "--out", str(cand_dir / f"nm-{arch}.onnx")]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cand-dir", default="data/nm_candidates",
                    help="folder of the candidate nm-<arch>.onnx (default %(default)s)")
    ap.add_argument("--data", default="data/crystal_v3.h5", help="dataset (validation split)")
    ap.add_argument("--train", nargs="*", default=[], help="architectures to train first")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--int8", action="store_true", help="also static int8 quantisations")
    ap.add_argument("--core", type=int, default=0, help="CPU to pin to (default 0)")
    ap.add_argument("--val-atoms", type=int, default=None,
                    help="validation atoms used (default all)")
    ap.add_argument("--near", default=None, help="held-out near-transition dataset")
    ap.add_argument("--near-atoms", type=int, default=20000,
                    help="its atoms used (default %(default)s, seeded subset)")
    ap.add_argument("--shipped", action="store_true",
                    help="also measure the shipped crystal-nm (alone and with its screen)")
    ap.add_argument("--table", default=str(TABLE), help="markdown output (default %(default)s)")
    ap.add_argument("--key", default="nm_pareto", help="results.json key (default %(default)s)")
    args = ap.parse_args()
    cand_dir, data = Path(args.cand_dir), Path(args.data)
    if args.train:
        cand_dir.mkdir(parents=True, exist_ok=True)
        train(args.train, data, cand_dir, args.epochs)
    cands = sorted(cand_dir.glob("nm-*.onnx")) if cand_dir.is_dir() else []
    cands = [c for c in cands if not c.name.endswith((".int8.onnx", ".tmp.onnx"))]
    if not cands or not data.is_file():
        print(f"nm_pareto: no candidates in {cand_dir} or no dataset {data}: nothing measured "
              "(train them with --train paper small lite tiny)")
        return 0
    pin(args.core)
    entry = machine_state() | {"dataset": str(data), "rows": []}
    shipped = model_path("crystal-nm")
    frame = thermal(lattice("fcc", 3.52, 10), 0.08, seed=0)
    near = ([Path(args.near)] if args.near else sorted(Path("data").glob("*near*.h5"))
            or [p for p in [Path("data/transition_heldout.h5")] if p.is_file()])
    entry["near_transition_data"] = str(near[0]) if near else None
    entry["near_transition_atoms"] = args.near_atoms
    rows = []
    runs = [(c, False) for c in cands]
    if args.shipped:
        with_screen = Classifier.load(shipped).screen is not None
        runs = [(shipped, False)] + ([(shipped, True)] if with_screen else []) + runs
    for path, screen in runs:
        clf = Classifier.load(path, n_threads=1, screen=screen)
        feats = np.concatenate([f for _, _, f in clf.descriptor.iter_compute(frame)])[:4096]
        x = np.ascontiguousarray(feats, dtype=np.float32)
        ids = np.arange(1, len(x) + 1)
        clf.predict_proba(x[:64])
        arch = arch_of(clf)
        if path == shipped and not screen and args.shipped and with_screen:
            arch += " alone (`screen=no`)"
        passed_on = 1.0
        if clf.screen is not None:  # the fraction of the speed maps the screen passes on
            clf.screen_counts[:] = 0
            clf.predict_mc(x, ids, 0)
            passed_on = 1.0 - clf.screen_counts[0] / len(x)
            arch += (f" + {arch_of(clf.screen)} screen ({100 * passed_on:.1f} % of the "
                     f"speed maps passed on)")
        mflop, params = flops_and_params(clf, passed_on)
        xv, yv = load_split(data, 1, clf, args.val_atoms)
        t = clf.mc_passes
        row = {"model": str(path), "arch": arch, "n_grid": clf.feature_shape[-1],
               "parameters": params,
               "mflop_per_atom": mflop, "mc_passes": t,
               "atoms_per_s_1pass": best_rate(lambda c=clf, x=x: c.predict_proba(x), len(x)),
               "atoms_per_s_mc": best_rate(
                   lambda c=clf, x=x, i=ids: c.predict_mc(x, i, 0), len(x)),
               "val_accuracy_1pass": accuracy(clf, xv, yv, 1),
               "val_accuracy_mc": accuracy(clf, xv, yv, t),
               "train_seconds": (clf.metadata.get("training") or {}).get("seconds"),
               "training": {k: (clf.metadata.get("training") or {}).get(k)
                            for k in ("dataset", "epochs", "seed", "lr", "batch_size",
                                      "class_weights")}}
        if near:
            xn, yn = load_split(near[0], None, clf, args.near_atoms)
            row["near_accuracy_1pass"] = accuracy(clf, xn, yn, 1)
            row["near_accuracy_mc"] = accuracy(clf, xn, yn, t)
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
              flush=True)
        if args.int8:
            xc, _ = load_split(data, 0, clf, 2048)
            q = quantize(path, xc, cand_dir / f"{Path(path).stem}.int8.onnx")
            qc = Classifier.load(q, n_threads=1, mc_passes=1)
            pq, p32 = qc.predict_proba(xv), clf.predict_proba(xv)
            rows.append(row | {"model": str(q), "arch": row["arch"] + " int8", "mc_passes": 1,
                               "atoms_per_s_1pass": best_rate(
                                   lambda c=qc, x=x: c.predict_proba(x), len(x)),
                               "atoms_per_s_mc": None,
                               "val_accuracy_1pass": float((pq.argmax(1) == yv).mean()),
                               "val_accuracy_mc": None,
                               "agreement_with_fp32": float((pq.argmax(1) == p32.argmax(1))
                                                            .mean())})
            print(rows[-1], flush=True)
    entry["rows"] = rows
    finish(entry)
    merge_results(args.key, entry)
    Path(args.table).write_text(markdown(entry))
    print(f"wrote {args.table} and results.json '{args.key}'")
    return 0


def markdown(entry: dict) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f}"

    near = entry["near_transition_data"]
    lines = [
        "# Neighbors Map networks: accuracy against speed",
        "",
        f"Measured by `{entry['command']}` on {entry['date']} ({entry['cpu']}, "
        f"{entry['instruction_set']}; load average {entry['load_average_at_start'][0]} at "
        f"start, {entry['load_average_at_end'][0]} at the end"
        + (": a busy machine, speeds are low and noisy" if entry["machine_busy"] else "")
        + "). Speed: model only, onnxruntime with 1 intra-op thread, the process pinned to "
        f"CPU {entry['runs_on_cpus']}, 4,096 precomputed maps of thermal fcc per call "
        "batched by 1,024. Accuracy: argmax on the validation split of "
        f"`{entry['dataset']}` (by MD run, no atom in training), one deterministic pass "
        "and the model's MC-dropout passes T. Near-transition accuracy: "
        + (f"`{near}` ({entry['near_transition_atoms']:,} of its atoms, seeded: elements "
           "held out of every training set)." if near else
           "**missing** (no held-out near-transition dataset `data/*near*.h5` yet)."),
        "",
        "Training (`insitu train fit --descriptor nm --arch ARCH [--n-grid N]`: Adam, "
        "one-cycle lr, batch 256) as read from each model's metadata in the column "
        "'trained'; n_G below 32: the stored 32 x 32 maps cropped (exact, "
        "`insitu/training/nm_crop.py`).",
        "",
        "| architecture | n_G | parameters | MFLOP/atom | atoms/s/core (1 pass) | atoms/s/core "
        "(T passes) | val. acc. % (1 pass) | val. acc. % (T) | near-transition acc. % (1 pass) "
        "| near-transition acc. % (T) | "
        "int8 agreement with fp32 % | trained |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in entry["rows"]:
        tr = r.get("training") or {}
        mc = ("n/a" if r["atoms_per_s_mc"] is None
              else f"{r['atoms_per_s_mc']:,.0f} (T={r['mc_passes']})")
        lines.append(
            f"| {r['arch']} (`{Path(r['model']).name}`) | {r.get('n_grid', '')} | "
            f"{r['parameters']:,} | "
            f"{r['mflop_per_atom']:.2f} | {r['atoms_per_s_1pass']:,.0f} | {mc} | "
            f"{pct(r['val_accuracy_1pass'])} | {pct(r['val_accuracy_mc'])} | "
            f"{pct(r.get('near_accuracy_1pass'))} | {pct(r.get('near_accuracy_mc'))} | "
            f"{pct(r.get('agreement_with_fp32'))} | "
            f"{tr.get('epochs')} epochs, seed {tr.get('seed')}, class weights "
            f"{tr.get('class_weights') or 'none'}, `{tr.get('dataset')}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
