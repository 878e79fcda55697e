"""Inference throughput of the shipped classifiers (onnxruntime, fp32, one core).

    .venv/bin/python benchmarks/inference.py [--models models/crystal-nm.onnx ...]

Measures, per model, (a) the model alone: ``Classifier.predict_proba`` on precomputed
features of a thermal fcc crystal, 1 intra-op thread (one deterministic pass), and
``predict_mc`` with the model's MC-dropout passes T; for a model with a screening network
(:mod:`insitu.model.screen`) the same with its own network alone (``screen=False``) and the
fraction of atoms the screen settled; for a model whose MC head runs in numba
(:mod:`insitu.model.mc_head`) ``predict_mc`` with its passes through onnxruntime; (b)
descriptor + model: ``Classifier.classify(frame)``
(at T). Merges the figures into benchmarks/results.json under
the key "inference" (other keys are left as they are). The process pins itself to one
core (``--core``, default 0, as ``taskset -c 0``); date, command, load average and the
CPU's instruction set are recorded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _bench import RESULTS, best_rate, finish, machine_state, merge_results, pin

from insitu.model import Classifier
from insitu.resources import model_path
from insitu.testing import lattice, thermal


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["crystal-nm", "crystal-boo"],
                    help="shipped model names or .onnx paths")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=10, help="fcc cells per side (4 reps^3 atoms)")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--core", type=int, default=0, help="CPU to pin to (default 0)")
    args = ap.parse_args(argv)
    pin(args.core)

    frame = thermal(lattice("fcc", 3.52, args.reps), 0.08, seed=0)
    out = machine_state() | {"threads": 1,
           "batch_size": args.batch_size, "frame_atoms": len(frame),
           "frame": f"thermal fcc a=3.52, sigma 0.08 A, {args.reps}^3 cells", "models": {}}
    import onnxruntime as ort
    out["onnxruntime"] = ort.__version__
    for path in args.models:
        path = model_path(path)
        clf = Classifier.load(path, n_threads=1, batch_size=args.batch_size)
        feats = np.concatenate([f for _, _, f in clf.descriptor.iter_compute(frame)])
        feats = feats.astype(np.float32)
        n = min(len(feats), 16384)
        x = np.ascontiguousarray(feats[:n])
        clf.predict_proba(x[:256])  # warm up
        model_rate = best_rate(lambda: clf.predict_proba(x), n, 3, 1.0)  # noqa: B023
        ids = np.arange(1, n + 1)
        clf.screen_counts[:] = 0  # the screen's share, from the timed passes
        mc_rate = best_rate(lambda: clf.predict_mc(x, ids, 0), n, 3, 1.0)  # noqa: B023
        screen = {}
        if clf.screen is not None:
            settled, seen = clf.screen_counts
            alone = Classifier.load(path, n_threads=1, batch_size=args.batch_size,
                                    screen=False)
            alone.predict_proba(x[:256])
            screen = {
                "screen": clf.screen_rule.model,
                "screened_fraction": round(float(settled / seen), 4),
                "atoms_per_s_no_screen": round(best_rate(
                    lambda a=alone, x=x: a.predict_proba(x), n, 3, 1.0), 1),
                "atoms_per_s_mc_no_screen": round(best_rate(
                    lambda a=alone, x=x, i=ids: a.predict_mc(x, i, 0), n, 3, 1.0), 1),
            }
        if clf.head is not None:  # the same passes through onnxruntime (graph masks)
            graph = Classifier.load(path, n_threads=1, batch_size=args.batch_size)
            graph.head = None
            screen["atoms_per_s_mc_graph_head"] = round(best_rate(
                lambda g=graph, x=x, i=ids: g.predict_mc(x, i, 0), n, 3, 1.0), 1)
        clf.classify(frame)
        e2e_rate = best_rate(lambda: clf.classify(frame), len(frame), 2, 1.0)  # noqa: B023
        desc_rate = best_rate(lambda: clf.descriptor.compute(frame), len(frame), 2, 1.0)  # noqa: B023
        name = Path(path).stem
        out["models"][name] = {
            "descriptor": clf.descriptor.kind,
            "feature_shape": list(clf.feature_shape),
            "atoms_per_s": round(model_rate, 1),
            "mc_passes": clf.mc_passes,
            "atoms_per_s_mc": round(mc_rate, 1),
            "descriptor_atoms_per_s": round(desc_rate, 1),
            "end_to_end_atoms_per_s": round(e2e_rate, 1),
            "sha256": clf.sha256[:16],
        } | screen
        print(f"{name}: model {model_rate:,.0f} atoms/s (1 pass), {mc_rate:,.0f} atoms/s "
              f"(T={clf.mc_passes}), descriptor {desc_rate:,.0f} atoms/s, "
              f"descriptor+model {e2e_rate:,.0f} atoms/s (1 thread, batch {args.batch_size})"
              + (f"; screen settled {100 * screen['screened_fraction']:.1f} % of the atoms, "
                 f"the model's own network alone {screen['atoms_per_s_no_screen']:,.0f} "
                 f"atoms/s (1 pass), {screen['atoms_per_s_mc_no_screen']:,.0f} (T)"
                 if "screen" in screen else "")
              + (f"; T passes through onnxruntime {screen['atoms_per_s_mc_graph_head']:,.0f} "
                 "atoms/s" if "atoms_per_s_mc_graph_head" in screen else ""))
    finish(out)
    if not args.no_write:
        res = merge_results("inference", out, Path(args.results))
        print(f"merged into {res} under 'inference'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
