"""One atomic configuration as plain arrays: the system every offline analysis starts from.

Readers and writers of LAMMPS files are in :mod:`insitu.io`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One atomic configuration.

    Parameters
    ----------
    positions : (N, 3) float64, Angstrom.
    cell : (3, 3) float64, rows are the box vectors a, b, c (origin at 0, any triclinic cell).
    pbc : (3,) bool, periodicity along a, b, c.
    types : (N,) int, 1-based LAMMPS atom types.
    ids : (N,) int64, global atom ids; defaults to 1..N. Used to break distance ties so
        that results do not depend on atom order.
    step, time : optional provenance from a dump.
    """

    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    types: np.ndarray
    ids: np.ndarray | None = None
    step: int | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.cell = np.ascontiguousarray(self.cell, dtype=np.float64).reshape(3, 3)
        self.pbc = np.asarray(self.pbc, dtype=bool).reshape(3)
        n = len(self.positions)
        self.types = np.ascontiguousarray(self.types, dtype=np.int64).reshape(n)
        if self.ids is None:
            self.ids = np.arange(1, n + 1, dtype=np.int64)
        self.ids = np.ascontiguousarray(self.ids, dtype=np.int64).reshape(n)
        if abs(np.linalg.det(self.cell)) < 1e-12 and self.pbc.any():
            raise ValueError("Frame: the cell is singular but periodic boundaries were requested")

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell)))

    def subset(self, mask: np.ndarray) -> Frame:
        """Frame with only the atoms selected by a boolean mask or index array."""
        info = dict(self.info)
        if "columns" in info:
            info["columns"] = {k: np.asarray(v)[mask] for k, v in info["columns"].items()}
        return Frame(self.positions[mask], self.cell, self.pbc, self.types[mask],
                     self.ids[mask], self.step, info)

    @classmethod
    def from_lammps_box(cls, positions, types, boxlo, boxhi, xy=0.0, xz=0.0, yz=0.0,
                        pbc=(True, True, True), ids=None, step=None) -> Frame:
        """Build a frame from LAMMPS box parameters; positions are shifted so boxlo is 0."""
        lo = np.asarray(boxlo, dtype=np.float64)
        hi = np.asarray(boxhi, dtype=np.float64)
        cell = np.array([[hi[0] - lo[0], 0.0, 0.0],
                         [xy, hi[1] - lo[1], 0.0],
                         [xz, yz, hi[2] - lo[2]]])
        pos = np.asarray(positions, dtype=np.float64) - lo
        frame = cls(pos, cell, np.asarray(pbc, bool), types, ids, step)
        frame.info["origin"] = lo  # LAMMPS's boxlo, restored by the dump writer
        return frame

    @classmethod
    def from_ase(cls, atoms, model=None) -> Frame:
        """Frame from an :class:`ase.Atoms`; types from the chemical symbols (the model's
        type names when ``model`` is given). See :func:`insitu.io.ase_bridge.frame_from_ase`."""
        from .io.ase_bridge import frame_from_ase

        return frame_from_ase(atoms, model)

    def to_ase(self, symbols=None):
        """This frame as an :class:`ase.Atoms` (needs ASE). See
        :func:`insitu.io.ase_bridge.frame_to_ase`."""
        from .io.ase_bridge import frame_to_ase

        return frame_to_ase(self, symbols)

    def to_points(self, cutoff: float):
        """The atoms (wrapped into the cell) followed by their periodic images within
        ``cutoff``: the open point set the descriptors run on, as on an MPI rank."""
        from .locality import Points

        return Points.from_frame(self, cutoff)
