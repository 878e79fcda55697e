"""Structures for the MC-dropout uncertainty tests: Voronoi polycrystals with free surfaces
(relaxed, and held at 0.5 T_m, with LAMMPS) and structures outside the crystal models'
classes. Each builder is seeded: a given call builds the same structure."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from lammps_helpers import run_lammps

from insitu.frame import Frame
from insitu.io.lammps_dump import read_lammps_dump
from insitu.locality import CellList
from insitu.testing import lattice, random_rotation, thermal, write_data

VACUUM_ANGSTROM = 12.0
"""Vacuum above and below the slab: wider than any descriptor cutoff (free surfaces)."""

_SHIFTS = np.array([(i, j, 0) for i, j in itertools.product((-1, 0, 1), repeat=2)], float)


def _images(centres: np.ndarray, length_xy: float) -> tuple[np.ndarray, np.ndarray]:
    """Grain centres and their periodic images in x and y: (positions, grain of each)."""
    shifted = (centres[None] + _SHIFTS[:, None] * length_xy).reshape(-1, 3)
    return shifted, np.tile(np.arange(len(centres)), len(_SHIFTS))


def boundary_distance(positions, grain, centres, length_xy: float, slab: tuple) -> np.ndarray:
    """Distance (Angstrom) of each atom to the nearest grain boundary (bisector plane of its
    grain's centre and any other centre or periodic image) or free surface (z = slab[0] or
    slab[1]); positions may be wrapped in x, y."""
    positions = np.asarray(positions, float)
    own = centres[grain]
    rel = positions - own
    rel[:, :2] -= length_xy * np.round(rel[:, :2] / length_xy)  # atom next to its centre
    p = own + rel
    images, _ = _images(centres, length_xy)
    d = np.full(len(p), np.inf)
    for c in images:
        gap = c[None] - own
        norm = np.linalg.norm(gap, axis=1)
        other = norm > 1e-9
        plane = (np.sum((p - c) ** 2, 1) - np.sum((p - own) ** 2, 1)) / (2 * np.maximum(norm,
                                                                                        1e-9))
        d = np.where(other, np.minimum(d, plane), d)
    surface = np.minimum(p[:, 2] - slab[0], slab[1] - p[:, 2])
    return np.minimum(d, surface)


def polycrystal(structure: str, a: float, n_grains: int, length_xy: float, thickness: float,
                seed: int, nn_distance: float, c_over_a: float | None = None):
    """Voronoi polycrystal slab: ``n_grains`` randomly oriented grains of ``structure``
    (periodic in x and y, free surfaces in z). Returns (frame, grain index per atom,
    centres, slab (z_lo, z_hi)). Atoms closer than 0.75 ``nn_distance`` across a boundary
    are thinned (the one with the larger index goes)."""
    rng = np.random.default_rng(seed)
    slab = (VACUUM_ANGSTROM, VACUUM_ANGSTROM + thickness)
    centres = np.column_stack([rng.random(n_grains) * length_xy,
                               rng.random(n_grains) * length_xy,
                               slab[0] + (0.2 + 0.6 * rng.random(n_grains)) * thickness])
    images, owner = _images(centres, length_xy)
    span = np.sqrt(2 * (2 * length_xy) ** 2 + (2 * thickness) ** 2)
    block = lattice(structure, a, int(np.ceil(span / a)) + 1, c_over_a=c_over_a)
    base = block.positions - block.positions.mean(axis=0)
    kept, grains = [], []
    for g in range(n_grains):
        p = base @ random_rotation(1000 * seed + g).T + centres[g]
        p = p[(p[:, 2] >= slab[0]) & (p[:, 2] < slab[1])]
        d2 = ((p[:, None, :] - images[None]) ** 2).sum(-1)
        nearest = np.argmin(d2, axis=1)
        mine = (owner[nearest] == g) & np.all(_SHIFTS[nearest // n_grains] == 0, axis=1)
        kept.append(p[mine])
        grains.append(np.full(int(mine.sum()), g))
    positions, grain = np.vstack(kept), np.concatenate(grains)
    positions[:, :2] %= length_xy
    cell = np.diag([length_xy, length_xy, thickness + 2 * VACUUM_ANGSTROM])
    pairs = CellList.periodic(positions, cell, [True] * 3, None, 0.75 * nn_distance).query()
    centre = np.repeat(np.arange(len(positions)), pairs.counts())
    drop = np.zeros(len(positions), bool)
    for i, j in zip(centre, pairs.index):
        if i < j and not drop[i]:
            drop[j] = True
    frame = Frame(positions[~drop], cell, [True] * 3, np.ones(int((~drop).sum()), int))
    return frame, grain[~drop], centres, slab


RELAX = """units metal
atom_style atomic
boundary p p p
read_data poly.data
mass 1 {mass}
{pair}neighbor 2.0 bin
neigh_modify delay 0 every 1 check yes
thermo 200
fix br all box/relax x 0.0 y 0.0 couple none vmax 0.001
min_style cg
minimize 1e-8 1e-10 2000 20000
unfix br
write_dump all custom relaxed.dump id type x y z modify sort id
{md}"""

MD = """velocity all create {t2} {seed} dist gaussian
fix md all npt temp {t} {t} 0.1 x 0 0 1 y 0 0 1
run {steps}
write_dump all custom hot.dump id type x y z modify sort id
"""


def relax(frame: Frame, material, workdir: Path, temperature: float | None = None,
          steps: int = 2000, seed: int = 5) -> dict:
    """LAMMPS: minimise (box relaxed in x, y), then optionally hold at ``temperature`` for
    ``steps`` fs (NPT in x, y). Returns {"relaxed": Frame, "hot": Frame} (ids kept)."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_data(workdir / "poly.data", frame)
    md = "" if temperature is None else MD.format(t=temperature, t2=2 * temperature,
                                                   seed=seed, steps=steps)
    run_lammps(RELAX.format(mass=material.mass, pair=material.pair_lines(), md=md), workdir,
               timeout=900)
    out = {"relaxed": read_lammps_dump(workdir / "relaxed.dump")}
    if temperature is not None:
        out["hot"] = read_lammps_dump(workdir / "hot.dump")
    return out


# --- structures outside the training classes ----------------------------------------------

def simple_cubic(a: float = 3.359, n: int = 7, seed: int = 0) -> Frame:
    """Simple cubic (alpha-Po lattice constant by default), 0.05 A thermal noise."""
    return thermal(lattice("sc", a, n), 0.05, seed)


def b2(a: float = 2.887, n: int = 6, seed: int = 0) -> Frame:
    """B2 (CsCl) with two atom types (NiAl lattice constant by default), 0.05 A noise."""
    frame = thermal(lattice("bcc", a, n), 0.05, seed)
    frame.types = np.tile([1, 2], len(frame) // 2)
    return frame


def stacking_fault(a: float = 4.05, n_layers: int = 26, n_xy: int = 6, seed: int = 0):
    """fcc (Al by default) stacked along [111] with one intrinsic stacking fault in the
    middle (ABCA|CABC: the two layers next to the fault are hcp-like): (frame, distance of
    each atom to the fault plane). ``n_layers`` = 2 mod 3 keeps the periodic stacking
    perfect across the box."""
    d111 = a / np.sqrt(3.0)
    b = a / np.sqrt(2.0)
    offsets = {"A": (0.0, 0.0), "B": (b / 2, b / (2 * np.sqrt(3))),
               "C": (b, b / np.sqrt(3))}
    half = n_layers // 2
    perfect = "ABC" * (n_layers // 3 + 2)
    sequence = perfect[:half] + perfect[half + 1:n_layers + 1]  # one layer skipped: the fault
    ij = np.array(list(itertools.product(range(n_xy), range(2 * n_xy))), float)
    cell = np.diag([n_xy * b, n_xy * b * np.sqrt(3.0), n_layers * d111])
    rows = []
    for k, letter in enumerate(sequence):
        x = (ij[:, 0] + 0.5 * (ij[:, 1] % 2)) * b + offsets[letter][0]
        y = ij[:, 1] * b * np.sqrt(3.0) / 2 + offsets[letter][1]
        rows.append(np.column_stack([x, y, np.full(len(ij), k * d111)]))
    pos = np.vstack(rows)
    frame = thermal(Frame(pos, cell, [True] * 3, np.ones(len(pos), int)), 0.05, seed)
    fault_z = (half - 0.5) * d111
    return frame, np.abs(pos[:, 2] - fault_z)


def random_points(n: int = 2000, density: float = 0.0602, seed: int = 0) -> Frame:
    """Uniformly random points (no excluded volume) at a metal's density (Al by default)."""
    length = (n / density) ** (1.0 / 3.0)
    pos = np.random.default_rng(seed).random((n, 3)) * length
    return Frame(pos, np.eye(3) * length, [True] * 3, np.ones(n, int))
