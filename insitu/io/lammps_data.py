"""LAMMPS data files: read the box and atoms of a data file, write one from a Frame."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..frame import Frame

__all__ = ["read_lammps_data", "write_lammps_data"]

# columns of the type and of x in the Atoms section, per atom style
ATOM_STYLE_COLUMNS = {"atomic": (1, 2), "charge": (1, 3), "full": (2, 4), "molecular": (2, 3),
                      "bond": (2, 3), "angle": (2, 3)}


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
    style = style.split()[0] if style else "atomic"
    if style not in ATOM_STYLE_COLUMNS:
        raise ValueError(f"{path}: atom style '{style}' of the Atoms section is not supported "
                         f"(supported: {', '.join(ATOM_STYLE_COLUMNS)})")
    if len(rows) != natoms:
        raise ValueError(f"{path}: the header declares {natoms} atoms but the Atoms section "
                         f"holds {len(rows)} lines")
    tcol, xcol = ATOM_STYLE_COLUMNS[style]
    try:
        arr = np.array([r[:xcol + 3] for r in rows], dtype=float)
    except ValueError:
        raise ValueError(f"{path}: malformed line in the Atoms section (style {style}: "
                         f"expected at least {xcol + 3} numbers per line)") from None
    ids = arr[:, 0].astype(np.int64)
    order = np.argsort(ids)
    arr = arr[order]
    return Frame.from_lammps_box(arr[:, xcol:xcol + 3], arr[:, tcol].astype(np.int64), lo, hi,
                                 *tilt, ids=ids[order])


def write_lammps_data(path: str | Path, frame: Frame,
                      masses: Mapping[int, float] | None = None, n_types: int | None = None
                      ) -> Path:
    """Write ``frame`` as an ``atom_style atomic`` data file (ids kept, so a run reads the
    same atom ids on any number of ranks; ``create_atoms`` numbers them per rank)."""
    c = frame.cell
    origin = np.asarray(frame.info.get("origin", (0.0, 0.0, 0.0)), float)
    n_types = int(n_types or (frame.types.max() if len(frame) else 1))
    lines = ["LAMMPS data file written by insitu", "", f"{len(frame)} atoms",
             f"{n_types} atom types", "",
             f"{origin[0]} {origin[0] + c[0, 0]} xlo xhi",
             f"{origin[1]} {origin[1] + c[1, 1]} ylo yhi",
             f"{origin[2]} {origin[2] + c[2, 2]} zlo zhi"]
    if abs(c[1, 0]) + abs(c[2, 0]) + abs(c[2, 1]) > 0:
        lines.append(f"{c[1, 0]} {c[2, 0]} {c[2, 1]} xy xz yz")
    if masses:
        lines += ["", "Masses", ""] + [f"{t} {m}" for t, m in sorted(masses.items())]
    lines += ["", "Atoms # atomic", ""]
    pos = frame.positions + origin
    lines += [f"{i} {t} {x:.10f} {y:.10f} {z:.10f}"
              for i, t, (x, y, z) in zip(frame.ids, frame.types, pos)]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
