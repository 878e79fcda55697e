"""Build and run the GIIP paper's 2D Lennard-Jones crystal with dislocations (Sec. 3.1).

20,000 atoms (141 rows x 142 columns: a square sample, whose half-rows hold ~45 atoms on
average like the paper's 452 deleted atoms / 10) on a hexagonal lattice (nearest-neighbour
distance 2^(1/6) sigma_LJ) with vacuum boundaries; ten times: pick a random atom and one of
its six close-packed neighbours and delete the half-plane of atoms (in 2D a half-row)
starting at that atom in the direction of that neighbour. Then NVE, timestep 0.003, 30,000
steps (lammps_inputs/giip_lj2d.lmp). Output: out/giip/lj2d/lj2d_final.dump (x y z c_pe).

    .venv/bin/python examples/giip/lj2d_build.py [--steps 30000] [--seed 7] [--temperature 0.01]

The paper does not say how the ten cuts evolve: in our runs the dislocations glide out to
the free surfaces and vacancy-type defects (cut ends, small voids) stay; how many depends
on the seed (examples/giip/lj2d_seeds.sh runs several).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np

from insitu.frame import Frame
from insitu.io.lammps_data import write_lammps_data
from insitu.launch import lmp_binary

ROOT = Path(__file__).resolve().parents[2]


def hexagonal_crystal(n_rows: int = 141, n_cols: int = 142) -> tuple[np.ndarray, float]:
    """(n_rows * n_cols, 2) positions of a triangular lattice at the LJ minimum spacing."""
    a = 2.0 ** (1.0 / 6.0)
    i, j = np.meshgrid(np.arange(n_cols), np.arange(n_rows), indexing="xy")
    x = a * (i + 0.5 * (j % 2))
    y = a * np.sqrt(3.0) / 2.0 * j
    return np.column_stack([x.ravel(), y.ravel()]), a


def delete_half_rows(pos: np.ndarray, a: float, n_cuts: int, rng) -> np.ndarray:
    """Delete ``n_cuts`` half-rows: from a random atom along one of its six neighbour
    directions to the edge of the crystal (each leaves an edge dislocation)."""
    for _ in range(n_cuts):
        start = pos[rng.integers(len(pos))]
        angle = np.pi / 3.0 * rng.integers(6)
        u = np.array([np.cos(angle), np.sin(angle)])
        rel = pos - start
        along = rel @ u
        across = np.abs(rel[:, 0] * u[1] - rel[:, 1] * u[0])
        pos = pos[~((along > -0.25 * a) & (across < 0.25 * a))]
    return pos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rows", type=int, default=141)
    parser.add_argument("--cols", type=int, default=142)
    parser.add_argument("--temperature", type=float, default=0.01,
                        help="initial temperature (LJ units) of the NVE run")
    parser.add_argument("--outdir", default=str(ROOT / "out/giip/lj2d"))
    args = parser.parse_args()
    out = Path(args.outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    pos2, a = hexagonal_crystal(args.rows, args.cols)
    pos2 = delete_half_rows(pos2, a, 10, rng)
    lo = pos2.min(axis=0) - 5.0
    hi = pos2.max(axis=0) + 5.0
    pos = np.column_stack([pos2 - lo, np.full(len(pos2), 0.5)])
    cell = np.diag([hi[0] - lo[0], hi[1] - lo[1], 1.0])
    frame = Frame(pos, cell, [False, False, True], np.ones(len(pos), np.int64))
    frame.info["origin"] = (0.0, 0.0, -0.5)
    write_lammps_data(out / "lj2d.data", frame, masses={1: 1.0})
    print(f"{len(pos)} atoms after deleting 10 half-rows (from 20,000)")
    subprocess.run([lmp_binary(), "-in", str(ROOT / "lammps_inputs/giip_lj2d.lmp"),
                    "-var", "data", str(out / "lj2d.data"), "-var", "outdir", str(out),
                    "-var", "steps", str(args.steps), "-var", "temp", str(args.temperature),
                    "-log", str(out / "log.lammps"), "-screen", "none"], check=True, cwd=out)
    print(f"wrote {out / 'lj2d_final.dump'}")


if __name__ == "__main__":
    main()
