"""GIIP analysis of the 2D Lennard-Jones crystal with dislocations (Hardin et al., Sec. 3.1).

Input: out/giip/lj2d/lj2d_final.dump from examples/giip/lj2d_build.py. Training LAEs: the
``n_low`` lowest- and the rest highest-energy atoms away from the edges (paper: 100 + 4,900
of 15,484); GIIP settings of the paper (sigma 0.5, weight 1 below 1.3, spline to 0 at 1.75
sigma_LJ; O(2) search, 10 deg grid + continuous refinement); clusters of diameter <= 1 atom;
diffusion map with eps = 1 atom; Nystrom extension of the other atoms (all eligible atoms in
a window around the centre of the sample plus a random sample elsewhere).

Writes examples/giip/lj2d_*.png, examples/giip/lj2d_results.txt and the extended dump
out/giip/lj2d/lj2d_giip.dump (columns giip_cluster, giip_c1..c4, giip_wsum for OVITO).

    .venv/bin/python examples/giip/lj2d_giip.py [--n-train 1000] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from insitu.giip import (
    GIIPSettings,
    Projection,
    cluster_diameters,
    distance_matrix,
    extract_laes,
    fit_model,
    linear_r2,
)
from insitu.giip.pipeline import (
    eligible_atoms,
    sample_frames,
    write_projection_dump,
)
from insitu.io.lammps_dump import read_lammps_dump

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SETTINGS = GIIPSettings(dim=2, sigma=0.5, inner=1.3, outer=1.75, species="none",
                        coarse_deg=10.0, n_starts=3)


def local_strain(frame, idx: np.ndarray) -> np.ndarray:
    """Mean distance to the six nearest neighbours / 2^(1/6) - 1 (area strain proxy)."""
    from insitu.locality import NeighborQuery

    q = NeighborQuery.from_system(frame, 1.6)
    nl = q.cells.query_points(idx)
    out = np.full(len(idx), np.nan)
    for k in range(len(idx)):
        d = nl.distances[nl.offsets[k]:nl.offsets[k + 1]]
        if len(d) >= 6:
            out[k] = d[:6].mean() / 2 ** (1 / 6) - 1.0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dump", default=str(ROOT / "out/giip/lj2d/lj2d_final.dump"))
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-low", type=int, default=100)
    p.add_argument("--window", type=float, default=40.0, help="side of the extended window")
    p.add_argument("--n-random", type=int, default=2000)
    p.add_argument("--eps", type=float, default=1.0)
    p.add_argument("--diameter", type=float, default=1.0)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--outdir", default=str(ROOT / "out/giip/lj2d"),
                   help="distance cache and extended dump")
    p.add_argument("--figures", default=str(HERE), help="where the PNG and results go")
    p.add_argument("--reuse", action="store_true",
                   help="reuse distances.npz in --outdir (same sets)")
    args = p.parse_args()
    frame = read_lammps_dump(args.dump)
    frame.pbc[:] = False
    margin = 3.0
    t0 = time.perf_counter()
    sample = sample_frames([frame], SETTINGS, args.n_train, "energy", edge_margin=margin,
                           n_low=args.n_low)
    train_idx = np.searchsorted(frame.ids, sample.atom_id)
    # extension set: a window around the highest-energy eligible atom (a defect)
    # + random atoms elsewhere (not training)
    eligible = eligible_atoms(frame, (), margin)
    cand = np.setdiff1d(eligible, train_idx)
    pe = frame.info["columns"]["c_pe"]
    centre = frame.positions[eligible[np.argmax(pe[eligible])], :2]
    inwin = np.all(np.abs(frame.positions[cand, :2] - centre) < args.window / 2, axis=1)
    rng = np.random.default_rng(1)
    rest = cand[~inwin]
    ext = np.sort(np.concatenate([cand[inwin], rng.choice(rest, min(args.n_random, len(rest)),
                                                           replace=False)]))
    ext_laes = extract_laes(frame, ext, SETTINGS)
    out, figures = Path(args.outdir), Path(args.figures)
    cache = out / "distances.npz"
    t1 = time.perf_counter()
    if args.reuse and cache.exists():       # distances of an earlier run (same sets)
        with np.load(cache) as z:
            dist, dext, took = z["train"], z["ext"], z["seconds"]
    else:
        dist = distance_matrix(sample.laes, None, SETTINGS, args.processes, progress=True)
        t2 = time.perf_counter()
        dext = distance_matrix(ext_laes, sample.laes, SETTINGS, args.processes)
        took = np.array([t2 - t1, time.perf_counter() - t2])
        np.savez(cache, train=dist, ext=dext, seconds=took)
    model, _ = fit_model(sample.laes, SETTINGS, args.eps, args.diameter, n_coords=10,
                         distances=dist)
    n_pairs = len(dist) * (len(dist) - 1) / 2
    diam = cluster_diameters(dist, model.labels)
    proj = model.project_distances(dext)
    t3 = time.perf_counter()
    # everything placed: training (own coordinates) + extension (Nystrom)
    idx = np.concatenate([train_idx, ext])
    coords = np.concatenate([model.dmap.coordinates, proj.coords])
    clusters = np.concatenate([model.labels, proj.cluster])
    wsum = np.concatenate([sample.laes.weight_sums(), ext_laes.weight_sums()])
    order = np.argsort(idx)
    idx, coords, clusters, wsum = idx[order], coords[order], clusters[order], wsum[order]
    allp = Projection(coords, clusters, np.zeros(len(idx)))  # training atoms: distance 0
    write_projection_dump(out / "lj2d_giip.dump", frame, idx, allp, wsum)
    ok = np.isfinite(coords[:, :2]).all(axis=1)
    r2_c1 = linear_r2(coords[ok, 0], wsum[ok])
    r2_c12 = linear_r2(alpha_prime(coords[ok], wsum[ok]), wsum[ok])
    strain = local_strain(frame, idx)
    six = ok & np.isfinite(strain) & (np.abs(wsum - 6) < 0.05)
    r2_strain = [linear_r2(coords[six, k], strain[six]) for k in range(4)]
    defect = eligible[np.abs(extract_laes(frame, eligible, SETTINGS).weight_sums() - 6.0) > 0.1]
    n_defect, n_sites = len(defect), defect_sites(frame, defect)
    lines = [
        "GIIP, 2D Lennard-Jones crystal with dislocations (Hardin et al. Sec. 3.1)",
        f"atoms {len(frame)}; eligible (>= {margin} sigma from the edges) {len(eligible)}, "
        f"of which {n_defect} not 6-coordinated (|CN - 6| > 0.1) in {n_sites} defects "
        "(groups of such atoms within 1.75 sigma of each other)",
        f"training LAEs {len(sample.laes)} ({args.n_low} lowest + "
        f"{len(sample.laes) - args.n_low} highest energy); extension {len(ext)}",
        f"distance matrix: {n_pairs:.0f} pairs in {took[0]:.1f} s wall "
        f"({args.processes} processes, shared machine); extension "
        f"{len(ext) * len(dist)} pairs in {took[1]:.1f} s",
        f"clusters (complete linkage, diameter <= {args.diameter}): {model.n_clusters}; "
        f"largest intra-cluster distance {diam.max():.3f} atoms",
        f"cluster sizes (training): {np.bincount(model.labels)[:15].tolist()}",
        f"eigenvalues 1-10: {np.round(model.dmap.eigenvalues, 4).tolist()}",
        f"redundancy r^2 1-10: {np.round(model.redundancy_r2, 3).tolist()}",
        f"r^2(coordination number = sum of weights ~ c1) = {r2_c1:.3f}  (paper 0.93)",
        f"r^2(coordination number ~ alpha', the best direction in the c1-c2 plane, as the "
        f"paper's Fig. 1d) = {r2_c12:.3f}",
        "r^2(local strain ~ c_k) over 6-coordinated atoms, k=1..4: "
        + ", ".join(f"{v:.3f}" for v in r2_strain),
        f"time: sampling {t1 - t0:.1f} s, this run {t3 - t0:.1f} s",
    ]
    text = "\n".join(lines)
    print(text)
    (figures / "lj2d_results.txt").write_text(text + "\n")
    summary = {"dump": str(args.dump), "atoms": len(frame), "eligible": len(eligible),
               "not_6_coordinated": n_defect, "defect_sites": n_sites, "n_train": len(sample.laes),
               "clusters": model.n_clusters, "max_cluster_diameter": float(diam.max()),
               "r2_cn_c1": r2_c1, "r2_cn_alpha_prime": r2_c12,
               "r2_strain_ck": [float(v) for v in r2_strain]}
    (out / "lj2d_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    k_strain = int(np.argmax(r2_strain))
    plot(frame, idx, coords, clusters, wsum, strain, model, k_strain, centre, args.window,
         figures)


def defect_sites(frame, atoms: np.ndarray) -> int:
    """Number of connected groups of ``atoms`` (bonds: closer than 1.75 sigma_LJ)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if len(atoms) == 0:
        return 0
    pairs = cKDTree(frame.positions[atoms, :2]).query_pairs(1.75, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(len(atoms), len(atoms)))
    return int(connected_components(graph, directed=False)[0])


def alpha_prime(coords: np.ndarray, cn: np.ndarray) -> np.ndarray:
    """The paper's alpha': the direction of the c1-c2 plane along which the coordination
    number varies (least-squares), as a coordinate."""
    a = np.column_stack([np.ones(len(cn)), coords[:, :2]])
    coef, *_ = np.linalg.lstsq(a, cn, rcond=None)
    b = coef[1:] / np.linalg.norm(coef[1:])
    return coords[:, :2] @ b


def plot(frame, idx, coords, clusters, wsum, strain, model, k_strain, centre, window,
         figures: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy = frame.positions[idx, :2]
    win = np.all(np.abs(xy - centre) < window / 2, axis=1)
    fig, ax = plt.subplots(2, 3, figsize=(17, 10.5))
    a = ax[0, 0]
    a.scatter(xy[win, 0], xy[win, 1], c=np.minimum(clusters[win], 9), cmap="tab10",
              vmin=0, vmax=9, s=14)
    a.set_title(f"{model.n_clusters} clusters (diameter <= {model.diameter:g} atom), window "
                "around the highest-energy atom")
    a.set_aspect("equal")
    a = ax[0, 1]
    ev, r2 = model.dmap.eigenvalues, model.redundancy_r2
    a.scatter(np.arange(1, len(ev) + 1), ev, c=np.clip(r2, 0, 1), cmap="viridis_r", vmin=0,
              vmax=1, s=60)
    for i, (e, r) in enumerate(zip(ev, r2)):
        a.annotate(f"{r:.2f}", (i + 1, e), textcoords="offset points", xytext=(4, 4))
    a.set_xlabel("diffusion coordinate")
    a.set_ylabel("eigenvalue (label: redundancy r^2)")
    a.set_title("significance and redundancy (cf. paper Fig. 1b)")
    ok = np.isfinite(coords[:, :2]).all(axis=1)
    a = ax[0, 2]
    a.scatter(coords[ok, 0], coords[ok, 1], c=wsum[ok], cmap="viridis", s=3)
    a.set_xlabel("c1")
    a.set_ylabel("c2")
    a.set_title("LAEs in the c1-c2 plane, colour: coordination number")
    a = ax[1, 0]
    ap = alpha_prime(coords[ok], wsum[ok])
    a.scatter(ap, wsum[ok], s=3, alpha=0.4, label="alpha' (best direction in c1-c2)")
    a.scatter(coords[ok, 0], wsum[ok] - 0.02, s=3, alpha=0.4, label="c1 (shifted by -0.02)")
    a.set_xlabel("diffusion coordinate")
    a.set_ylabel("coordination number (sum of LAE weights)")
    a.set_title(f"r^2: alpha' {linear_r2(ap, wsum[ok]):.3f}, c1 "
                f"{linear_r2(coords[ok, 0], wsum[ok]):.3f} (paper alpha': 0.93)")
    a.legend(markerscale=4)
    for a, v, title, cmap in ((ax[1, 1], coords[:, k_strain],
                               f"diffusion coordinate {k_strain + 1}", "coolwarm"),
                              (ax[1, 2], strain, "local strain (mean 6-nn distance / "
                               "2^(1/6) - 1)", "coolwarm")):
        vw = v[win]
        lo, hi = np.nanpercentile(vw, [3, 97])
        sc = a.scatter(xy[win, 0], xy[win, 1], c=vw, cmap=cmap, vmin=lo, vmax=hi, s=14)
        fig.colorbar(sc, ax=a, shrink=0.8)
        a.set_title(title)
        a.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(figures / "lj2d_giip.png", dpi=80)
    print(f"wrote {figures / 'lj2d_giip.png'}")


if __name__ == "__main__":
    main()
