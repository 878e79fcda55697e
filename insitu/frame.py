"""Atomic configurations as plain arrays, and readers for LAMMPS dump and data files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
        return Frame(self.positions[mask], self.cell, self.pbc, self.types[mask],
                     self.ids[mask], self.step, dict(self.info))

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
        return cls(pos, cell, np.asarray(pbc, bool), types, ids, step)


def _box_from_dump_header(lines: list[str], header: str):
    """Return boxlo, boxhi, (xy, xz, yz), pbc from the three BOX BOUNDS lines."""
    flags = header.split()[3:]
    triclinic = len(flags) >= 3 and flags[0] == "xy"
    pbc_flags = flags[3:] if triclinic else flags
    pbc = tuple(f == "pp" for f in pbc_flags) if len(pbc_flags) == 3 else (True, True, True)
    vals = [list(map(float, ln.split())) for ln in lines]
    if triclinic:
        (xlob, xhib, xy), (ylob, yhib, xz), (zlo, zhi, yz) = vals
        xlo = xlob - min(0.0, xy, xz, xy + xz)
        xhi = xhib - max(0.0, xy, xz, xy + xz)
        ylo = ylob - min(0.0, yz)
        yhi = yhib - max(0.0, yz)
    else:
        (xlo, xhi), (ylo, yhi), (zlo, zhi) = (v[:2] for v in vals)
        xy = xz = yz = 0.0
    return (xlo, ylo, zlo), (xhi, yhi, zhi), (xy, xz, yz), pbc


def iter_lammps_dump(path: str | Path) -> Iterator[Frame]:
    """Yield the frames of a LAMMPS text dump (``dump atom`` or ``dump custom``).

    Needs ``id``, ``type`` and one of x y z / xu yu zu / xs ys zs. Extra columns are kept
    in ``frame.info['columns']`` as float arrays (sorted like the atoms).
    """
    with open(path) as fh:
        while True:
            line = fh.readline()
            if not line:
                return
            if not line.startswith("ITEM: TIMESTEP"):
                continue
            step = int(fh.readline().split()[0])
            fh.readline()  # ITEM: NUMBER OF ATOMS
            n = int(fh.readline())
            header = fh.readline()
            lo, hi, tilt, pbc = _box_from_dump_header([fh.readline() for _ in range(3)], header)
            cols = fh.readline().split()[2:]
            data = np.loadtxt(fh, max_rows=n, ndmin=2) if n else np.zeros((0, len(cols)))
            col = {name: data[:, i] for i, name in enumerate(cols)}
            if "id" not in col or "type" not in col:
                raise ValueError(f"{path}: dump needs 'id' and 'type' columns, has {cols}")
            order = np.argsort(col["id"], kind="stable")
            col = {k: v[order] for k, v in col.items()}
            frame = _frame_from_columns(col, lo, hi, tilt, pbc, step, path)
            frame.info["columns"] = {k: v for k, v in col.items()
                                     if k not in ("id", "type", "x", "y", "z", "xu", "yu", "zu",
                                                  "xs", "ys", "zs")}
            yield frame


def _frame_from_columns(col, lo, hi, tilt, pbc, step, path) -> Frame:
    ids = col["id"].astype(np.int64)
    types = col["type"].astype(np.int64)
    if all(k in col for k in ("x", "y", "z")):
        pos = np.column_stack([col["x"], col["y"], col["z"]])
    elif all(k in col for k in ("xu", "yu", "zu")):
        pos = np.column_stack([col["xu"], col["yu"], col["zu"]])
    elif all(k in col for k in ("xs", "ys", "zs")):
        f = Frame.from_lammps_box(np.zeros((len(ids), 3)), types, lo, hi, *tilt, pbc=pbc)
        frac = np.column_stack([col["xs"], col["ys"], col["zs"]])
        return Frame(frac @ f.cell, f.cell, f.pbc, types, ids, step)
    else:
        raise ValueError(f"{path}: dump has no position columns (x y z, xu yu zu or xs ys zs)")
    return Frame.from_lammps_box(pos, types, lo, hi, *tilt, pbc=pbc, ids=ids, step=step)


def read_lammps_dump(path: str | Path, index: int = -1) -> Frame:
    """Read one frame (default: the last) of a LAMMPS text dump."""
    frames = list(iter_lammps_dump(path))
    if not frames:
        raise ValueError(f"{path}: no frames found in dump")
    return frames[index]


def read_lammps_data(path: str | Path) -> Frame:
    """Read the box and ``Atoms`` section of a LAMMPS data file (atomic or charge style)."""
    lines = Path(path).read_text().splitlines()
    lo = [0.0, 0.0, 0.0]
    hi = [0.0, 0.0, 0.0]
    tilt = [0.0, 0.0, 0.0]
    natoms = 0
    atoms_at = None
    style = "atomic"
    for i, raw in enumerate(lines):
        ln = raw.split("#")[0].strip()
        if ln.endswith("atoms") and len(ln.split()) == 2:
            natoms = int(ln.split()[0])
        for k, ax in (("xlo xhi", 0), ("ylo yhi", 1), ("zlo zhi", 2)):
            if ln.endswith(k):
                lo[ax], hi[ax] = map(float, ln.split()[:2])
        if ln.endswith("xy xz yz"):
            tilt = list(map(float, ln.split()[:3]))
        if raw.strip().startswith("Atoms"):
            atoms_at = i
            if "#" in raw:
                style = raw.split("#")[1].strip()
    if atoms_at is None:
        raise ValueError(f"{path}: no 'Atoms' section")
    rows = []
    for raw in lines[atoms_at + 1:]:
        ln = raw.split("#")[0].strip()
        if not ln:
            if rows:
                break
            continue
        rows.append(ln.split())
        if len(rows) == natoms:
            break
    arr = np.array(rows, dtype=float)
    xcol = {"atomic": 2, "charge": 3, "full": 4, "molecular": 3}.get(style, 2)
    ids = arr[:, 0].astype(np.int64)
    order = np.argsort(ids)
    arr = arr[order]
    return Frame.from_lammps_box(arr[:, xcol:xcol + 3], arr[:, 1].astype(np.int64), lo, hi,
                                 *tilt, ids=ids[order])
