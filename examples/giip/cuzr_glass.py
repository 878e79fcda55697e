"""GIIP analysis of a Cu50Zr50 glass quenched at three rates (after Hardin et al. Sec. 3.2-3.3,
with Cu-Zr / CuZr_mm.eam.fs instead of their Ni-Nb potential).

Input: out/giip/cuzr/rate_<R>/seed_<S>/cuzr_final.dump from
examples/giip/run_cuzr_quenches.sh (independent samples per rate). Cu-centred LAEs of all
samples are pooled (as the paper pools Ni-centred ones); sign species
(Cu +1, Zr -1), sigma 1.0 A, weight 1 below 3.2 A and 0 at 4.0 A, O(3) search (20 deg
Super-Fibonacci grid + continuous refinement); a random training subset, clusters of
diameter <= ``--diameter``, diffusion map with eps 1.5 atoms (the paper's), Nystrom
extension of the other LAEs. Reports r^2 of the diffusion coordinates against the local
composition (Cu fraction of the weighted neighbours) and the shift of the coordinate
distributions with quench rate, within the pooled LAEs and between independent samples.

    .venv/bin/python examples/giip/cuzr_glass.py [--n-train 300] [--processes 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from insitu.giip import (
    GIIPSettings,
    cluster_diameters,
    concat_laes,
    distance_matrix,
    extract_laes,
    fit_model,
    linear_r2,
)
from insitu.io.lammps_dump import read_lammps_dump

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SETTINGS = GIIPSettings(dim=3, sigma=1.0, inner=3.2, outer=4.0, species="sign",
                        type_signs=(1.0, -1.0), coarse_deg=20.0, n_starts=4)
RATES = ("3e14", "1e14", "3e13")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=300)
    p.add_argument("--eps", type=float, default=1.5)
    p.add_argument("--diameter", type=float, default=2.0)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--reuse", action="store_true", help="reuse out/giip/cuzr/distances.npz")
    args = p.parse_args()
    parts, rate_of, sample_of, pe = [], [], [], []
    for k, rate in enumerate(RATES):
        dumps = sorted((ROOT / f"out/giip/cuzr/rate_{rate}").glob("seed_*/cuzr_final.dump"))
        if not dumps:
            raise SystemExit(f"no samples for {rate} K/s: run examples/giip/"
                             "run_cuzr_quenches.sh first")
        for dump in dumps:
            frame = read_lammps_dump(dump)
            cu = np.flatnonzero(frame.types == 1)
            parts.append(extract_laes(frame, cu, SETTINGS))
            rate_of.append(np.full(len(cu), k))
            sample_of.append(np.full(len(cu), len(parts) - 1))
            pe.append(frame.info["columns"]["c_pe"][cu])
    laes, rate_of, pe = concat_laes(parts), np.concatenate(rate_of), np.concatenate(pe)
    sample_of = np.concatenate(sample_of)
    n = len(laes)
    rng = np.random.default_rng(0)
    train = np.sort(rng.choice(n, min(args.n_train, n), replace=False))
    ext = np.setdiff1d(np.arange(n), train)
    cache = ROOT / "out/giip/cuzr/distances.npz"
    t0 = time.perf_counter()
    if args.reuse and cache.exists():   # distances of an earlier run (same LAEs and split)
        with np.load(cache) as z:
            dist, dext, took = z["train"], z["ext"], z["seconds"]
    else:
        dist = distance_matrix(laes.subset(train), None, SETTINGS, args.processes,
                               progress=True)
        t1 = time.perf_counter()
        dext = distance_matrix(laes.subset(ext), laes.subset(train), SETTINGS, args.processes)
        took = np.array([t1 - t0, time.perf_counter() - t1])
        np.savez(cache, train=dist, ext=dext, seconds=took)
    model, _ = fit_model(laes.subset(train), SETTINGS, args.eps, args.diameter, n_coords=8,
                         distances=dist)
    proj = model.project_distances(dext)
    model.center_types = (1,)
    model.meta = {"example": "examples/giip/cuzr_glass.py", "rates_K_per_s": list(RATES)}
    model.save(ROOT / "out/giip/cuzr/model.npz")
    coords = np.empty((n, model.dmap.eigenvectors.shape[1]))
    coords[train], coords[ext] = model.dmap.coordinates, proj.coords
    w = laes.weights
    x_cu = np.where(w > 0, w, 0).sum(1) / np.abs(w).sum(1)     # Cu fraction of neighbours
    r2 = [linear_r2(coords[:, k], x_cu) for k in range(6)]
    best = int(np.argmax(r2))
    fast, slow = rate_of == 0, rate_of == len(RATES) - 1
    from scipy.stats import ks_2samp

    lines = [
        "GIIP, Cu50Zr50 glass at three quench rates (Cu-centred LAEs, sign species)",
        f"rates (K/s, 1400 -> 500 K): {', '.join(RATES)}; {len(parts)} samples; LAEs {n} "
        f"({', '.join(str(int((rate_of == k).sum())) for k in range(len(RATES)))}); "
        f"training {len(train)}, Nystrom {len(ext)}",
        f"distance matrix {len(train) * (len(train) - 1) // 2} pairs in {took[0]:.0f} s, "
        f"extension {len(ext) * len(train)} pairs in {took[1]:.0f} s ({args.processes} "
        "processes, shared machine)",
        f"clusters (diameter <= {args.diameter}): {model.n_clusters}, largest intra-cluster "
        f"distance {cluster_diameters(dist, model.labels).max():.3f}; median training "
        f"distance {np.median(dist[np.triu_indices(len(dist), 1)]):.2f} atoms",
        f"eigenvalues 1-8: {np.round(model.dmap.eigenvalues, 4).tolist()}",
        f"redundancy r^2 1-8: {np.round(model.redundancy_r2, 3).tolist()}",
        "r^2(local Cu fraction ~ c_k), k=1..6: " + ", ".join(f"{v:.3f}" for v in r2),
        f"best: coordinate {best + 1}, r^2 = {r2[best]:.3f} (paper, Ni-Nb: 0.97)",
    ]
    for k in range(3):
        m = [coords[rate_of == j, k] for j in range(len(RATES))]
        ks = ks_2samp(coords[fast, k], coords[slow, k])
        lines.append(f"c{k + 1} mean +- s.e. by rate: " + ", ".join(
            f"{r}: {v.mean():+.4f} +- {v.std() / np.sqrt(len(v)):.4f}" for r, v in
            zip(RATES, m)) + f"; KS fastest vs slowest p = {ks.pvalue:.2g}")
        lines.append(f"  c{k + 1} sample means by rate (independent quenches): " + "; ".join(
            f"{r}: " + " ".join(f"{coords[sample_of == s, k].mean():+.3f}"
                                for s in np.unique(sample_of[rate_of == j]))
            for j, r in enumerate(RATES)) + "; " + shift_between_samples(
                coords[:, k], rate_of, sample_of))
    lines.append("Cu fraction mean by rate: " + ", ".join(
        f"{r}: {x_cu[rate_of == j].mean():.4f}" for j, r in enumerate(RATES)))
    lines.append("per-atom PE of Cu (eV) mean by rate: " + ", ".join(
        f"{r}: {pe[rate_of == j].mean():.4f}" for j, r in enumerate(RATES)))
    lines.append("r^2(Cu PE ~ c_k), k=1..4: " + ", ".join(
        f"{linear_r2(coords[:, k], pe):.3f}" for k in range(4)))
    text = "\n".join(lines)
    print(text)
    (HERE / "cuzr_results.txt").write_text(text + "\n")
    plot(model, coords, x_cu, rate_of, best)


def shift_between_samples(c: np.ndarray, rate_of: np.ndarray, sample_of: np.ndarray) -> str:
    """Slowest minus fastest rate: difference of the per-sample means and its standard error
    from the scatter between independent samples (not between the LAEs of one sample, which
    share a history), with Welch's t-test p-value."""
    from scipy.stats import ttest_ind

    means = [np.array([c[sample_of == s].mean() for s in np.unique(sample_of[rate_of == r])])
             for r in (0, rate_of.max())]
    if min(len(m) for m in means) < 2:
        return "one sample per rate: no between-sample error"
    diff = means[1].mean() - means[0].mean()
    se = np.sqrt(sum(m.var(ddof=1) / len(m) for m in means))
    p = ttest_ind(means[1], means[0], equal_var=False).pvalue
    return f"slowest - fastest {diff:+.4f} +- {se:.4f} (between samples), Welch p = {p:.2g}"


def plot(model, coords, x_cu, rate_of, best: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(12, 10))
    a = ax[0, 0]
    ev, r2 = model.dmap.eigenvalues, model.redundancy_r2
    a.scatter(np.arange(1, len(ev) + 1), ev, c=np.clip(r2, 0, 1), cmap="viridis_r", vmin=0,
              vmax=1, s=60)
    for i, (e, r) in enumerate(zip(ev, r2)):
        a.annotate(f"{r:.2f}", (i + 1, e), textcoords="offset points", xytext=(4, 4))
    a.set_xlabel("diffusion coordinate")
    a.set_ylabel("eigenvalue (label: redundancy r^2)")
    a.set_title("significance and redundancy (cf. paper Fig. 2b)")
    a = ax[0, 1]
    a.scatter(coords[:, best], x_cu, s=3, alpha=0.4)
    a.set_xlabel(f"diffusion coordinate {best + 1}")
    a.set_ylabel("Cu fraction of the LAE (weighted)")
    a.set_title(f"local composition: r^2 = {linear_r2(coords[:, best], x_cu):.3f} "
                "(paper, Ni-Nb: 0.97)")
    nonredundant = [k for k in range(1, len(r2)) if r2[k] < 0.5 and k != best]
    for j, k in enumerate((best, nonredundant[0] if nonredundant else 1)):
        a = ax[1, j]
        for r, name in enumerate(RATES):
            v = np.sort(coords[rate_of == r, k])
            a.plot(v, (np.arange(len(v)) + 0.5) / len(v), lw=2,
                   label=f"{name} K/s: mean {v.mean():+.3f} +- {v.std() / np.sqrt(len(v)):.3f}")
        a.set_xlabel(f"diffusion coordinate {k + 1}")
        a.set_ylabel("cumulative fraction of Cu-centred LAEs")
        a.legend()
        a.set_title("distribution by quench rate (1400 -> 500 K)")
    fig.tight_layout()
    fig.savefig(HERE / "cuzr_giip.png", dpi=90)
    print(f"wrote {HERE / 'cuzr_giip.png'}")


if __name__ == "__main__":
    main()
