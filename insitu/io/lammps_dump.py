"""LAMMPS text dumps (``dump atom`` / ``dump custom``): read frames, write labelled frames."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

import numpy as np

from ..frame import Frame

__all__ = ["iter_lammps_dump", "read_lammps_dump", "write_lammps_dump"]

POSITION_COLUMNS = ("x", "y", "z", "xu", "yu", "zu", "xs", "ys", "zs")


def box_from_dump_header(lines: list[str], header: str):
    """boxlo, boxhi, (xy, xz, yz), pbc from the three BOX BOUNDS lines."""
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
            lo, hi, tilt, pbc = box_from_dump_header([fh.readline() for _ in range(3)], header)
            cols = fh.readline().split()[2:]
            data = np.loadtxt(fh, max_rows=n, ndmin=2) if n else np.zeros((0, len(cols)))
            col = {name: data[:, i] for i, name in enumerate(cols)}
            if "id" not in col or "type" not in col:
                raise ValueError(f"{path}: dump needs 'id' and 'type' columns, has {cols}")
            order = np.argsort(col["id"], kind="stable")
            col = {k: v[order] for k, v in col.items()}
            frame = _frame_from_columns(col, lo, hi, tilt, pbc, step, path)
            frame.info["columns"] = {k: v for k, v in col.items()
                                     if k not in ("id", "type", *POSITION_COLUMNS)}
            yield frame


def _frame_from_columns(col, lo, hi, tilt, pbc, step, path) -> Frame:
    ids = col["id"].astype(np.int64)
    types = col["type"].astype(np.int64)
    for names in (("x", "y", "z"), ("xu", "yu", "zu")):
        if all(k in col for k in names):
            pos = np.column_stack([col[k] for k in names])
            return Frame.from_lammps_box(pos, types, lo, hi, *tilt, pbc=pbc, ids=ids, step=step)
    if all(k in col for k in ("xs", "ys", "zs")):
        box = Frame.from_lammps_box(np.zeros((len(ids), 3)), types, lo, hi, *tilt, pbc=pbc)
        frac = np.column_stack([col["xs"], col["ys"], col["zs"]])
        return Frame.from_lammps_box(frac @ box.cell + np.asarray(lo), types, lo, hi, *tilt,
                                     pbc=pbc, ids=ids, step=step)
    raise ValueError(f"{path}: dump has no position columns (x y z, xu yu zu or xs ys zs)")


def read_lammps_dump(path: str | Path, index: int = -1) -> Frame:
    """Read one frame (default: the last) of a LAMMPS text dump."""
    frames = list(iter_lammps_dump(path))
    if not frames:
        raise ValueError(f"{path}: no frames found in dump")
    return frames[index]


def write_lammps_dump(fh: TextIO, frame: Frame, columns: Mapping[str, np.ndarray],
                      formats: Mapping[str, str] | None = None) -> None:
    """Append one frame as ``dump custom`` with ``id type x y z`` and the given per-atom
    ``columns`` (name -> array). The box keeps the frame's LAMMPS origin (``boxlo``)."""
    formats = dict(formats or {})
    c = frame.cell
    origin = np.asarray(frame.info.get("origin", (0.0, 0.0, 0.0)), float)
    n = len(frame)
    fh.write(f"ITEM: TIMESTEP\n{frame.step if frame.step is not None else 0}\n")
    fh.write(f"ITEM: NUMBER OF ATOMS\n{n}\n")
    pbc = " ".join("pp" if p else "ff" for p in frame.pbc)
    xlo, ylo, zlo = origin
    if abs(c[1, 0]) + abs(c[2, 0]) + abs(c[2, 1]) > 0:
        xy, xz, yz = c[1, 0], c[2, 0], c[2, 1]
        fh.write(f"ITEM: BOX BOUNDS xy xz yz {pbc}\n"
                 f"{xlo + min(0.0, xy, xz, xy + xz)} {xlo + c[0, 0] + max(0.0, xy, xz, xy + xz)}"
                 f" {xy}\n{ylo + min(0.0, yz)} {ylo + c[1, 1] + max(0.0, yz)} {xz}\n"
                 f"{zlo} {zlo + c[2, 2]} {yz}\n")
    else:
        fh.write(f"ITEM: BOX BOUNDS {pbc}\n{xlo} {xlo + c[0, 0]}\n{ylo} {ylo + c[1, 1]}\n"
                 f"{zlo} {zlo + c[2, 2]}\n")
    names = list(columns)
    fh.write("ITEM: ATOMS id type x y z" + "".join(f" {k}" for k in names) + "\n")
    data = np.column_stack([frame.ids, frame.types, frame.positions + origin,
                            *[np.asarray(columns[k]) for k in names]]) if n else np.zeros((0, 5))
    fmt = ["%d", "%d", "%.6f", "%.6f", "%.6f"]
    for k in names:
        kind = np.asarray(columns[k]).dtype.kind
        fmt.append(formats.get(k, "%d" if kind in "iub" else "%.6g"))
    np.savetxt(fh, data, fmt=fmt)
