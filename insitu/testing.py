"""Structure builders for the tests and the benchmarks: one place for crystal lattices,
thermal noise, vacancies, substitutional types, supercells and rotations.

Every builder returns an :class:`insitu.frame.Frame` (orthogonal periodic cell, positions in
Angstrom, 1-based types, ids 1..N in construction order) and never changes its input::

    from insitu.testing import lattice, thermal
    frame = thermal(lattice("fcc", 3.615, 4), sigma=0.1, seed=0)   # 256 atoms of thermal Cu

Random numbers come from ``numpy.random.default_rng(seed)``, one generator per call, so a
given call always builds the same structure.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from insitu.frame import Frame

__all__ = ["STRUCTURES", "unit_cell", "lattice", "thermal", "random_types", "remove_fraction",
           "wrap", "replicate", "image_points", "random_rotation", "thermal_ni", "NI_LATTICE",
           "write_data", "write_dump"]

# Fractional coordinates of the conventional cells.
_BASES = {
    "sc": [[0, 0, 0]],
    "bcc": [[0, 0, 0], [0.5, 0.5, 0.5]],
    "fcc": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    "cubic_diamond": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
                      [0.25, 0.25, 0.25], [0.75, 0.75, 0.25], [0.75, 0.25, 0.75],
                      [0.25, 0.75, 0.75]],
    # orthogonal hcp cell (a, sqrt(3) a, c) holding 4 atoms
    "hcp": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 5.0 / 6.0, 0.5], [0.0, 1.0 / 3.0, 0.5]],
}
STRUCTURES = tuple(_BASES)

NI_LATTICE = 3.52
"""fcc Ni lattice constant (Angstrom) of :func:`thermal_ni`."""


def unit_cell(structure: str, a: float, c_over_a: float | None = None):
    """``(basis, lengths)``: fractional coordinates (k, 3) of the conventional cell of
    ``structure`` (one of :data:`STRUCTURES`) and its edge lengths (3,) in Angstrom. hcp
    uses the orthogonal cell (a, sqrt(3) a, c) with c = c_over_a * a (ideal sqrt(8/3))."""
    if structure not in _BASES:
        raise ValueError(f"unknown structure {structure!r}; known: {', '.join(STRUCTURES)}")
    basis = np.asarray(_BASES[structure], dtype=float)
    if structure == "hcp":
        ratio = np.sqrt(8.0 / 3.0) if c_over_a is None else float(c_over_a)
        lengths = np.array([a, np.sqrt(3.0) * a, ratio * a])
    else:
        lengths = np.array([a, a, a], dtype=float)
    return basis, lengths


def lattice(structure: str, a: float, n_cells: int | Sequence[int],
            c_over_a: float | None = None, atom_type: int = 1) -> Frame:
    """Perfect periodic crystal: ``n_cells`` (an int or 3 ints) conventional cells of
    ``structure`` (fcc, bcc, hcp, cubic_diamond, sc) with lattice constant ``a``. Atoms are
    ordered cell by cell (x slowest), basis atoms inside each cell."""
    reps = (int(n_cells),) * 3 if np.isscalar(n_cells) else tuple(int(k) for k in n_cells)
    basis, lengths = unit_cell(structure, a, c_over_a)
    grid = np.array(list(itertools.product(*[range(k) for k in reps])), dtype=float)
    positions = (grid[:, None, :] + basis[None]).reshape(-1, 3) * lengths
    return Frame(positions, np.diag(lengths * np.array(reps)), [True] * 3,
                 np.full(len(positions), int(atom_type)))


def _copy(frame: Frame, positions=None, types=None, ids=None, mask=None) -> Frame:
    sel = slice(None) if mask is None else mask
    return Frame(frame.positions[sel] if positions is None else positions, frame.cell,
                 frame.pbc, frame.types[sel] if types is None else types,
                 frame.ids[sel] if ids is None else ids, frame.step, dict(frame.info))


def thermal(frame: Frame, sigma: float, seed: int = 0) -> Frame:
    """Gaussian displacements of standard deviation ``sigma`` (Angstrom, per component).
    Atoms may leave the cell (see :func:`wrap`)."""
    rng = np.random.default_rng(seed)
    return _copy(frame, positions=frame.positions + rng.normal(0.0, sigma, frame.positions.shape))


def random_types(frame: Frame, types: Sequence[int], seed: int = 0,
                 p: Sequence[float] | None = None) -> Frame:
    """Each atom gets a type drawn from ``types`` (probabilities ``p``, default uniform)."""
    rng = np.random.default_rng(seed)
    return _copy(frame, types=rng.choice(np.asarray(types, dtype=np.int64), len(frame), p=p))


def remove_fraction(frame: Frame, fraction: float, seed: int = 0) -> Frame:
    """Frame without ``round(fraction * N)`` randomly chosen atoms (vacancies); the others
    keep their order and ids."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"remove_fraction: fraction must be in [0, 1], got {fraction}")
    n_remove = int(round(fraction * len(frame)))
    gone = np.random.default_rng(seed).choice(len(frame), n_remove, replace=False)
    keep = np.ones(len(frame), bool)
    keep[gone] = False
    return _copy(frame, mask=keep)


def wrap(frame: Frame) -> Frame:
    """Positions mapped into the cell along the periodic directions (as LAMMPS's
    ``create_atoms`` / ``read_data`` would hold them)."""
    frac = frame.positions @ np.linalg.inv(frame.cell)
    frac[:, frame.pbc] -= np.floor(frac[:, frame.pbc])
    return _copy(frame, positions=frac @ frame.cell)


def replicate(frame: Frame, reps: Sequence[int] = (3, 3, 3)) -> Frame:
    """Explicit supercell: copy (i, j, k) of the cell, in itertools.product order; atom n of
    copy (0, 0, 0) keeps index n, ids are 1..N of the supercell."""
    shifts = np.array(list(itertools.product(*[range(int(r)) for r in reps])), dtype=float)
    positions = (frame.positions[None] + (shifts @ frame.cell)[:, None]).reshape(-1, 3)
    return Frame(positions, frame.cell * np.asarray(reps, float)[:, None], frame.pbc,
                 np.tile(frame.types, len(shifts)))


def image_points(frame: Frame):
    """The frame's atoms (as given, not wrapped) followed by all their copies shifted by
    the 26 neighbouring cell vectors, as :class:`insitu.locality.Points` with the atoms as
    centres: an open point set like an MPI rank's local + ghost atoms, built without
    :func:`insitu.locality.periodic_images` (an independent check of the periodic mode for
    cutoffs up to the cell's shortest height)."""
    from insitu.locality import Points

    shifts = np.array([s for s in itertools.product((-1, 0, 1), repeat=3) if any(s)], float)
    ghosts = (frame.positions[None] + (shifts @ frame.cell)[:, None]).reshape(-1, 3)
    image_of = np.tile(np.arange(len(frame)), len(shifts))
    return Points(np.vstack([frame.positions, ghosts]),
                  np.concatenate([frame.types, frame.types[image_of]]),
                  np.concatenate([frame.ids, frame.ids[image_of]]), len(frame))


def random_rotation(seed: int) -> np.ndarray:
    """A random proper rotation matrix (3, 3) (QR of a Gaussian matrix, det +1)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def thermal_ni(noise_k: float, n_cells: int = 5, seed: int = 0) -> Frame:
    """fcc Ni (a = 3.52 A, ``n_cells``^3 cells) with Gaussian displacements of
    0.1 A * sqrt(noise_k / 1200 K): a stand-in for a thermal crystal at ``noise_k`` kelvin.
    The test fixtures' random models are fitted on it: keep these numbers."""
    return thermal(lattice("fcc", NI_LATTICE, n_cells), 0.1 * np.sqrt(noise_k / 1200.0), seed)


def write_data(path: str | Path, frame: Frame,
               masses: Mapping[int, float] | None = None) -> Path:
    """``frame`` (wrapped into its cell) as a LAMMPS data file, atom ids kept."""
    from insitu.io.lammps_data import write_lammps_data

    return write_lammps_data(path, wrap(frame), masses=masses)


def write_dump(path: str | Path, frames: Frame | Sequence[Frame],
               columns: Mapping[str, np.ndarray] | None = None) -> Path:
    """Frames as a LAMMPS text dump (``id type x y z`` plus ``columns``, the same for every
    frame); a frame without a step is written as step 0, 1, ... in order."""
    from insitu.io.lammps_dump import write_lammps_dump

    frames = [frames] if isinstance(frames, Frame) else list(frames)
    path = Path(path)
    with open(path, "w") as fh:
        for k, frame in enumerate(frames):
            if frame.step is None:
                frame = _copy(frame)
                frame.step = k
            write_lammps_dump(fh, frame, dict(columns or {}))
    return path
