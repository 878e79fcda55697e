"""``insitu giip sample|fit|extend``: unsupervised structure with the GIIP distance.

The offline pipeline of Hardin et al. (Gaussian Integral Inner Product distance,
agglomerative clustering, diffusion maps, Nystrom extension):

* ``sample DUMP... -o laes.npz``: training LAEs from LAMMPS dumps (random centres or the
  energy extremes of a per-atom energy column such as ``c_pe``);
* ``fit laes.npz -o model.npz``: GIIP distance matrix (parallel over ``--processes``),
  complete-linkage clusters of diameter <= ``--diameter`` atoms, diffusion map with kernel
  scale ``--eps`` atoms, redundancy r^2 of the coordinates; also reads LAEs sampled in situ
  (an HDF5 file written by ``insitu.coupling.giip_insitu``);
* ``extend DUMP -m model.npz -o out.dump``: every eligible atom placed by the Nystrom
  extension; the output dump has the columns giip_cluster, giip_c1..c4, giip_nearest and
  giip_wsum, for OVITO's Color coding.
"""

from __future__ import annotations

import argparse
import sys
import time

HELP = "unsupervised structure: GIIP distance, clusters, diffusion maps (sample, fit, extend)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu giip``."""
    sub = parser.add_subparsers(dest="giip_step", metavar="STEP", required=True)
    s = sub.add_parser("sample", help="training LAEs from LAMMPS dumps")
    s.add_argument("dumps", nargs="+", help="LAMMPS text dumps (last frame of each)")
    s.add_argument("--output", "-o", required=True, help="LAE sample file (.npz)")
    s.add_argument("--n", type=int, default=500, help="LAEs per dump (default 500)")
    s.add_argument("--select", choices=("random", "energy"), default="random",
                   help="random LAEs, or the energy extremes as in the paper (default random)")
    s.add_argument("--n-low", type=int, default=0,
                   help="with --select energy: this many lowest-energy atoms, the rest highest")
    s.add_argument("--energy-column", default="c_pe",
                   help="per-atom energy column of the dump for --select energy (default c_pe)")
    s.add_argument("--dim", type=int, default=3, choices=(2, 3),
                   help="2 for a 2D LAMMPS run (x, y), else 3 (default 3)")
    s.add_argument("--sigma", type=float, default=1.0, help="Gaussian width (length units)")
    s.add_argument("--inner", type=float, default=3.0, help="weight 1 below this distance")
    s.add_argument("--outer", type=float, default=4.0, help="weight 0 beyond (cubic spline)")
    s.add_argument("--species", choices=("none", "sign", "vector"), default="none",
                   help="species weights (Eq. 11): none, sign (+-1 per type) or vector")
    s.add_argument("--type-signs", default="1,-1", help="sign species: g of types 1,2,...")
    s.add_argument("--coarse-deg", type=float, default=None,
                   help="coarse orientation grid (default 10 in 2D, 20 in 3D)")
    s.add_argument("--center-types", default="", help="only centres of these types (1,2)")
    s.add_argument("--edge-margin", type=float, default=0.0,
                   help="skip centres this close to a free surface (non-periodic direction)")
    s.add_argument("--seed", type=int, default=0, help="random selection seed (default 0)")
    f = sub.add_parser("fit", help="distance matrix, clusters, diffusion map -> model")
    f.add_argument("samples", help="LAE sample (.npz from `sample`, or .h5 sampled in situ)")
    f.add_argument("--output", "-o", required=True, help="GIIP model file (.npz)")
    f.add_argument("--eps", type=float, default=1.0, help="kernel scale, atoms (Eq. 14)")
    f.add_argument("--diameter", type=float, default=1.0, help="cluster diameter, atoms")
    f.add_argument("--n-coords", type=int, default=10,
                   help="diffusion coordinates kept (default 10)")
    f.add_argument("--n-train", type=int, default=0, help="random subset (0: all)")
    f.add_argument("--processes", type=int, default=1,
                   help="processes for the distance matrix (default 1)")
    f.add_argument("--seed", type=int, default=0, help="seed of --n-train (default 0)")
    e = sub.add_parser("extend", help="Nystrom extension of a dump -> dump for OVITO")
    e.add_argument("dump", help="LAMMPS text dump (last frame)")
    e.add_argument("--model", "-m", required=True, help="GIIP model (.npz from `fit`)")
    e.add_argument("--output", "-o", required=True,
                   help="output dump with giip_cluster, giip_c1.. columns")
    e.add_argument("--processes", type=int, default=1,
                   help="processes for the distances (default 1)")
    e.add_argument("--edge-margin", type=float, default=0.0,
                   help="skip atoms this close to a free surface (default 0)")


def _types(text: str) -> tuple:
    return tuple(int(t) for t in text.split(",") if t.strip())


def _sample(args) -> int:
    from insitu.giip import GIIPSettings
    from insitu.giip.pipeline import sample_frames
    from insitu.io.lammps_dump import read_lammps_dump

    coarse = args.coarse_deg or (10.0 if args.dim == 2 else 20.0)
    settings = GIIPSettings(dim=args.dim, sigma=args.sigma, inner=args.inner, outer=args.outer,
                            species=args.species, coarse_deg=coarse,
                            n_starts=3 if args.dim == 2 else 4,
                            type_signs=tuple(float(x) for x in args.type_signs.split(",")))
    frames = [read_lammps_dump(p) for p in args.dumps]
    if args.dim == 2:
        for fr in frames:
            fr.pbc[2] = False
    sample = sample_frames(frames, settings, args.n, args.select, args.seed,
                           _types(args.center_types), args.edge_margin, args.energy_column,
                           args.n_low)
    sample.save(args.output)
    n = sample.laes.counts
    print(f"{len(n)} LAEs from {len(frames)} dump(s), {n.min()}-{n.max()} neighbours "
          f"(mean weight sum {sample.laes.weight_sums().mean():.2f}) -> {args.output}")
    return 0


def _fit(args) -> int:
    import numpy as np

    from insitu.giip import cluster_diameters, fit_model
    from insitu.giip.pipeline import LAESample

    if args.samples.endswith((".h5", ".hdf5")):
        from insitu.coupling.giip_insitu import read_sampled_laes

        sample = read_sampled_laes(args.samples)
    else:
        sample = LAESample.load(args.samples)
    laes = sample.laes
    if args.n_train and args.n_train < len(laes):
        pick = np.sort(np.random.default_rng(args.seed).choice(len(laes), args.n_train,
                                                               replace=False))
        laes = laes.subset(pick)
    t0 = time.perf_counter()
    model, d = fit_model(laes, sample.settings, args.eps, args.diameter, args.n_coords,
                         processes=args.processes, progress=True)
    model.center_types = tuple(sorted(set(sample.center_type.tolist())))
    path = model.save(args.output)
    n_pairs = len(d) * (len(d) - 1) // 2
    print(f"{len(d)} training LAEs, {n_pairs} distances in {time.perf_counter() - t0:.1f} s; "
          f"{model.n_clusters} clusters (diameter <= {args.diameter}: largest "
          f"{cluster_diameters(d, model.labels).max():.3f}); eigenvalues "
          f"{np.round(model.dmap.eigenvalues[:6], 4).tolist()}; redundancy r^2 "
          f"{np.round(model.redundancy_r2[:6], 2).tolist()} -> {path}")
    return 0


def _extend(args) -> int:
    import numpy as np

    from insitu.giip import GIIPModel
    from insitu.giip.pipeline import project_frame, write_projection_dump
    from insitu.io.lammps_dump import read_lammps_dump

    model = GIIPModel.load(args.model)
    frame = read_lammps_dump(args.dump)
    if model.settings.dim == 2:
        frame.pbc[2] = False
    t0 = time.perf_counter()
    idx, proj, laes = project_frame(model, frame, args.processes, args.edge_margin)
    write_projection_dump(args.output, frame, idx, proj, laes.weight_sums())
    frac = np.bincount(proj.cluster, minlength=model.n_clusters) / max(len(idx), 1)
    print(f"{len(idx)} atoms placed in {time.perf_counter() - t0:.1f} s; largest clusters "
          f"{np.round(np.sort(frac)[::-1][:5], 3).tolist()}; farther than the diameter from "
          f"every training LAE: {np.mean(proj.nearest > model.diameter):.3f} -> {args.output}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run one step of the GIIP pipeline."""
    try:
        import scipy  # noqa: F401
    except ImportError:
        print("insitu giip needs scipy: pip install 'insitu[giip]'", file=sys.stderr)
        return 2
    try:
        return {"sample": _sample, "fit": _fit, "extend": _extend}[args.giip_step](args)
    except (OSError, ValueError) as exc:
        print(f"ERROR insitu giip {args.giip_step}: {exc}", file=sys.stderr)
        return 1
