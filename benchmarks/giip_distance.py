"""GIIP distance throughput: LAE pairs per second on one core, orientation search included.

    .venv/bin/python benchmarks/giip_distance.py [--core N] [--pairs 4000]

* 2D: LAEs of a thermal triangular Lennard-Jones crystal (the paper's Sec. 3.1 settings:
  sigma 0.5, weight 1 below 1.3, 0 at 1.75 sigma_LJ; ~6 neighbours), O(2) search with the
  10 deg grid + continuous refinement (the examples' default) and, for comparison, a plain
  1 deg grid (the paper's resolution) without refinement;
* 3D: LAEs of a strongly disordered binary fcc (a = 4.0 A, noise 0.25 A, random types, sign
  species; sigma 1.0, weight 1 below 3.2 A, 0 at 4.0 A: ~12-14 neighbours, as in the Cu-Zr
  example), O(3) search with the 30 deg and 20 deg (default) Super-Fibonacci grids +
  refinement, and a paper-like 5 deg grid + refinement on 20 pairs (the reference for the
  accuracy of the coarser searches: distance in excess of the 5 deg one, in atoms).

Pairs/s of ``distance_matrix`` (one process, pinned to one core, NUMBA_NUM_THREADS=1),
compilation excluded. Merged into benchmarks/results.json under "giip_distance".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _bench import finish, machine_state, merge_results, pin  # noqa: E402

from insitu.frame import Frame  # noqa: E402
from insitu.giip import GIIPSettings, distance_matrix, extract_laes  # noqa: E402
from insitu.testing import lattice, random_types, thermal  # noqa: E402


def lj_laes(n: int, seed: int = 0):
    a = 2 ** (1 / 6)
    k = 30
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="xy")
    pos = np.column_stack([(a * (i + 0.5 * (j % 2))).ravel(),
                           (a * np.sqrt(3) / 2 * j).ravel(), np.zeros(k * k)])
    rng = np.random.default_rng(seed)
    pos[:, :2] += rng.normal(0, 0.05, (len(pos), 2))
    f = Frame(pos, np.diag([k * a, k * a * np.sqrt(3) / 2, 1.0]), [True, True, False],
              np.ones(len(pos), np.int64))
    s = GIIPSettings(dim=2, sigma=0.5, inner=1.3, outer=1.75, coarse_deg=10.0, n_starts=3)
    return extract_laes(f, rng.choice(len(f), n, replace=False), s), s


def glass_laes(n: int, seed: int = 0):
    f = random_types(thermal(lattice("fcc", 4.0, 5), 0.25, seed), [1, 2], seed)
    s = GIIPSettings(dim=3, sigma=1.0, inner=3.2, outer=4.0, species="sign",
                     coarse_deg=30.0, n_starts=4)
    rng = np.random.default_rng(seed)
    return extract_laes(f, rng.choice(len(f), n, replace=False), s), s


def pairs_per_s(laes, settings, n_rows: int, n_cols: int, repeats: int = 2) -> dict:
    a, b = laes.subset(np.arange(n_rows)), laes.subset(np.arange(n_rows, n_rows + n_cols))
    distance_matrix(a.subset([0]), b.subset([0]), settings)          # compile
    best = np.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        distance_matrix(a, b, settings)
        best = min(best, time.perf_counter() - t0)
        cpu = time.process_time() - c0
    n = n_rows * n_cols
    return {"pairs": n, "seconds": best, "pairs_per_s": n / best, "pairs_per_cpu_s": n / cpu,
            "mean_neighbours": float(laes.counts.mean()), "coarse_deg": settings.coarse_deg,
            "n_starts": settings.n_starts, "refinement": settings.max_iter > 0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--core", type=int, default=None, help="CPU to pin to (default: last)")
    ap.add_argument("--pairs", type=int, default=4000, help="pairs per 2D measurement")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    cpus = pin(args.core if args.core is not None else sorted(os.sched_getaffinity(0))[-1])
    entry = machine_state()
    entry["pinned_to"] = cpus
    l2, s2 = lj_laes(400)
    l3, s3 = glass_laes(300)
    rows = 20
    res = {"2d_lj_10deg_refined": pairs_per_s(l2, s2, rows, args.pairs // rows)}
    one_deg = GIIPSettings(**{**s2.to_dict(), "coarse_deg": 1.0, "n_starts": 1, "max_iter": 0})
    res["2d_lj_1deg_grid_only"] = pairs_per_s(l2, one_deg, rows, args.pairs // (4 * rows))
    res["3d_glass_30deg_refined"] = pairs_per_s(l3, s3, 10, args.pairs // 40)
    s20 = GIIPSettings(**{**s3.to_dict(), "coarse_deg": 20.0})
    res["3d_glass_20deg_refined"] = pairs_per_s(l3, s20, 10, args.pairs // 80)
    s5 = GIIPSettings(**{**s3.to_dict(), "coarse_deg": 5.0})
    res["3d_glass_5deg_refined"] = pairs_per_s(l3, s5, 2, 5, repeats=1)
    # accuracy of the coarse searches against the 5 deg one on the same pairs
    a, b = l3.subset(np.arange(2)), l3.subset(np.arange(2, 12))
    ref = distance_matrix(a, b, s5)
    for key, st in (("3d_glass_30deg_refined", s3), ("3d_glass_20deg_refined", s20)):
        excess = distance_matrix(a, b, st) - ref
        res[key]["max_excess_over_5deg_atoms"] = float(excess.max())
        res[key]["mean_excess_over_5deg_atoms"] = float(excess.mean())
        res[key]["pairs_compared_with_5deg"] = int(excess.size)
    entry["results"] = res
    for k, v in res.items():
        print(f"{k}: {v['pairs_per_s']:.4g} pairs/s (cpu {v['pairs_per_cpu_s']:.4g}), "
              f"{v['mean_neighbours']:.1f} neighbours"
              + (f", excess over 5 deg: max {v['max_excess_over_5deg_atoms']:.3f}, mean "
                 f"{v['mean_excess_over_5deg_atoms']:.4f} atoms"
                 if "max_excess_over_5deg_atoms" in v else ""), flush=True)
    entry = finish(entry)
    if not args.no_save:
        print(f"merged into {merge_results('giip_distance', entry)} under 'giip_distance'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
