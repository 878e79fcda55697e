"""LAMMPS text dumps (``dump atom`` / ``dump custom``): read frames, write labelled frames."""

from __future__ import annotations

import gzip
from collections import deque
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


def _open_text(path: str | Path) -> TextIO:
    """A text handle on a dump, gzip-compressed or not (by magic bytes, not by name)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt")
    return open(path)


def _raw_frames(path: str | Path) -> Iterator[tuple]:
    """(step, header lines, column names, atom lines) of each frame, unparsed."""
    with _open_text(path) as fh:
        line = fh.readline()
        while line:
            if not line.startswith("ITEM: TIMESTEP"):
                line = fh.readline()
                continue
            head = [fh.readline() for _ in range(8)]
            if not head[-1] or not head[1].startswith("ITEM: NUMBER OF ATOMS") \
                    or not head[3].startswith("ITEM: BOX BOUNDS") \
                    or not head[7].startswith("ITEM: ATOMS"):
                raise ValueError(f"{path}: malformed or truncated frame header after "
                                 f"'ITEM: TIMESTEP' (expected TIMESTEP, NUMBER OF ATOMS, "
                                 f"BOX BOUNDS and ATOMS items)")
            try:
                step = int(head[0].split()[0])
                n = int(head[2])
            except (ValueError, IndexError):
                raise ValueError(f"{path}: malformed timestep or atom count in a frame header "
                                 f"({head[0].strip()!r}, {head[2].strip()!r})") from None
            rows = [fh.readline() for _ in range(n)]
            if n and not rows[-1].strip():
                got = sum(1 for r in rows if r.strip())
                raise ValueError(f"{path}: frame at step {step} declares {n} atoms but the "
                                 f"file holds only {got} of them (truncated dump?)")
            yield step, head, head[7].split()[2:], rows
            line = fh.readline()


def _parse_frame(path, step, head, names, rows) -> Frame:
    lo, hi, tilt, pbc = box_from_dump_header(head[4:7], head[3])
    try:  # numpy's C parser; the slow path below explains what is wrong
        numbers = (np.loadtxt(rows, dtype=np.float64, ndmin=2) if rows
                   else np.zeros((0, len(names)))).reshape(len(rows), len(names))
        col = {name: numbers[:, i] for i, name in enumerate(names)}
    except ValueError:  # a text column (element names), or a malformed line
        fields = [r.split() for r in rows]
        bad = next((i for i, f in enumerate(fields) if len(f) != len(names)), None)
        if bad is not None:
            raise ValueError(f"{path}: frame at step {step}, atom line {bad + 1}: "
                             f"{len(fields[bad])} values for {len(names)} columns "
                             f"{names}") from None
        table = np.array(fields, dtype=object).reshape(len(rows), len(names))
        col = {}
        for i, name in enumerate(names):
            try:
                col[name] = table[:, i].astype(np.float64)
            except ValueError:
                col[name] = table[:, i].astype(str)
        if any(col[k].dtype.kind == "U" for k in ("id", "type", *POSITION_COLUMNS)
               if k in col):
            raise ValueError(f"{path}: frame at step {step}: non-numeric values in the id, "
                             "type or position columns") from None
    if "id" not in col:
        raise ValueError(f"{path}: dump needs an 'id' column, has {names}")
    if "type" not in col:
        if "element" not in col:
            raise ValueError(f"{path}: dump needs a 'type' or an 'element' column, has {names}")
        elements = sorted(set(col["element"].tolist()))
        col["type"] = np.array([elements.index(e) + 1 for e in col["element"]], np.float64)
    order = np.argsort(col["id"], kind="stable")
    col = {k: v[order] for k, v in col.items()}
    frame = _frame_from_columns(col, lo, hi, tilt, pbc, step, path)
    frame.info["columns"] = {k: v for k, v in col.items()
                             if k not in ("id", "type", *POSITION_COLUMNS)}
    if "element" in col:
        frame.info["type_names"] = {int(t): str(e) for t, e in zip(col["type"], col["element"])}
    return frame


def iter_lammps_dump(path: str | Path) -> Iterator[Frame]:
    """Yield the frames of a LAMMPS text dump (``dump atom`` or ``dump custom``, plain or
    gzipped), one at a time.

    Needs ``id``, ``type`` (or ``element``: types then number the sorted element names) and
    one of x y z / xu yu zu / xs ys zs. Extra columns are kept in ``frame.info['columns']``
    (sorted like the atoms). A truncated or malformed frame raises ValueError.
    """
    for raw in _raw_frames(path):
        yield _parse_frame(path, *raw)


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
    """Read one frame of a LAMMPS text dump (default: the last). Only that frame's atoms
    are parsed; ``index >= 0`` stops reading at frame ``index``."""
    wanted = None
    if index >= 0:
        for i, raw in enumerate(_raw_frames(path)):
            if i == index:
                wanted = raw
                break
    else:
        last = deque(_raw_frames(path), maxlen=-index)
        wanted = last[0] if len(last) == -index else None
    if wanted is None:
        raise ValueError(f"{path}: no frame {index} in the dump")
    return _parse_frame(path, *wanted)


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
    if not n:
        return
    values = [frame.ids, frame.types, *(frame.positions + origin).T,
              *[np.asarray(columns[k]) for k in names]]
    fmt = ["%d", "%d", "%.6f", "%.6f", "%.6f"]
    for k in names:
        kind = np.asarray(columns[k]).dtype.kind
        fmt.append(formats.get(k, "%d" if kind in "iub" else "%s" if kind in "US" else "%.6g"))
    text = [np.char.mod(f, v) for f, v in zip(fmt, values)]
    lines = text[0]
    for t in text[1:]:
        lines = np.char.add(np.char.add(lines, " "), t)
    fh.write("\n".join(lines.tolist()) + "\n")
