"""ASE interoperability: :class:`ase.Atoms` <-> :class:`insitu.Frame`, and every file format
ASE reads (extended XYZ, POSCAR, CIF, ...) as frames. ASE stays optional: nothing here
imports it until a function that needs it is called.

Atom types follow ASE's own LAMMPS convention (``atoms.arrays["type"]`` and ``["id"]``, as
``ase.io.read(..., format="lammps-data")`` sets them) when the atoms carry them; otherwise
they come from the chemical symbols: with a model whose metadata names its atom types
(``{"1": "Cu", "2": "Zr"}``) each symbol gets the model's type, else types number the sorted
symbols (the rule of :func:`insitu.io.lammps_dump.iter_lammps_dump` for ``element``
columns). The names land in ``frame.info["type_names"]``.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..frame import Frame
from .lammps_dump import iter_lammps_dump

__all__ = ["frame_from_ase", "frame_to_ase", "is_ase_atoms", "as_frame", "model_type_names",
           "iter_ase", "read_ase", "iter_frames"]


def is_ase_atoms(obj) -> bool:
    """Whether ``obj`` is an :class:`ase.Atoms` (checked without importing ASE)."""
    ase = sys.modules.get("ase")
    return ase is not None and isinstance(obj, ase.Atoms)


def model_type_names(model) -> dict[int, str] | None:
    """``{type: name}`` from a model: a :class:`insitu.Classifier`, a path or shipped model
    name, or already such a mapping. None when the model names no atom types."""
    if model is None:
        return None
    if isinstance(model, Mapping):
        types = model
    else:
        if isinstance(model, (str, Path)):
            from ..model import Classifier
            from ..resources import model_path

            path = Path(model)
            model = Classifier.load(path if path.is_file() else model_path(str(model)))
        types = getattr(model, "atom_types", None)
    if not types:
        return None
    return {int(k): str(v) for k, v in types.items() if str(k).isdigit()} or None


def _types_from_symbols(symbols: np.ndarray, type_names: Mapping[int, str] | None):
    """(types, {type: name}) for chemical symbols, by the model's names or sorted."""
    present = sorted(set(symbols.tolist()))
    if type_names:
        by_name = {name: t for t, name in type_names.items()}
        unknown = [s for s in present if s not in by_name]
        if unknown:
            raise ValueError(f"chemical symbols {unknown} are not atom types of the model "
                             f"(it knows {dict(sorted(type_names.items()))}); to apply it "
                             "anyway, number the types yourself: Frame.from_ase(atoms) "
                             "numbers the sorted symbols")
        return (np.array([by_name[s] for s in symbols], np.int64),
                {by_name[s]: s for s in present})
    index = {s: i + 1 for i, s in enumerate(present)}
    return np.array([index[s] for s in symbols], np.int64), {i: s for s, i in index.items()}


def _lammps_types(atoms, symbols: np.ndarray) -> np.ndarray | None:
    """``atoms.arrays['type']`` when present and consistent with the symbols (one symbol
    per type), else None."""
    types = atoms.arrays.get("type")
    if types is None or len(types) != len(symbols):
        return None
    types = np.asarray(types, np.int64)
    pairs = set(zip(types.tolist(), symbols.tolist()))
    if len({t for t, _ in pairs}) != len(pairs) or types.min(initial=1) < 1:
        return None
    return types


def frame_from_ase(atoms, model=None) -> Frame:
    """An :class:`insitu.Frame` from an :class:`ase.Atoms`.

    Positions and cell in Angstrom (ASE's units), periodicity from ``atoms.pbc``, ids from
    ``atoms.arrays["id"]`` when present (else 1..N), other per-atom arrays in
    ``frame.info["columns"]`` (as a dump's extra columns). Types: with ``model`` (a Classifier, a
    model path or name, or a ``{type: element}`` mapping) naming its atom types, each
    chemical symbol gets the model's type (a symbol the model does not know is a
    ValueError); otherwise ``atoms.arrays["type"]`` when present, else types number the
    sorted chemical symbols. ``frame.info["type_names"]`` maps types to symbols.
    """
    symbols = np.array(atoms.get_chemical_symbols(), dtype=str)
    type_names = model_type_names(model)
    lammps = None if type_names else _lammps_types(atoms, symbols)
    if lammps is not None:
        types, names = lammps, {int(t): str(s) for t, s in zip(lammps, symbols)}
    else:
        types, names = _types_from_symbols(symbols, type_names)
    ids = atoms.arrays.get("id")
    pbc = np.asarray(atoms.pbc, bool)
    cell = np.asarray(atoms.cell.array, np.float64)
    frame = Frame(np.asarray(atoms.positions, np.float64), cell, pbc, types,
                  None if ids is None else np.asarray(ids, np.int64))
    frame.info["type_names"] = dict(sorted(names.items()))
    columns = {k: np.asarray(v, dtype=str if np.asarray(v).dtype.kind == "O" else None)
               for k, v in atoms.arrays.items()
               if k not in ("numbers", "positions", "type", "id") and np.ndim(v) == 1}
    if columns:
        frame.info["columns"] = columns
    step = atoms.info.get("timestep", atoms.info.get("step"))
    if step is not None:
        frame.step = int(step)
    return frame


def frame_to_ase(frame: Frame, symbols: Mapping[int, str] | None = None):
    """An :class:`ase.Atoms` from a frame: chemical symbols from ``symbols`` or
    ``frame.info["type_names"]`` (``X`` for unnamed types), the LAMMPS types and ids in
    ``atoms.arrays["type"]`` / ``["id"]``, the frame's extra per-atom columns as arrays."""
    from ase import Atoms

    names = dict(frame.info.get("type_names") or {})
    names.update(symbols or {})
    atoms = Atoms(symbols=[names.get(int(t), "X") for t in frame.types],
                  positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
    atoms.arrays["type"] = frame.types.copy()
    atoms.arrays["id"] = frame.ids.copy()
    for name, values in frame.info.get("columns", {}).items():
        if name not in atoms.arrays:
            atoms.arrays[name] = np.asarray(values).copy()
    if frame.step is not None:
        atoms.info["timestep"] = int(frame.step)
    return atoms


def as_frame(system, model=None):
    """``system`` converted to a Frame when it is an :class:`ase.Atoms`, else unchanged
    (Frames and :class:`insitu.locality.Points` pass through)."""
    return frame_from_ase(system, model) if is_ase_atoms(system) else system


def iter_ase(path: str | Path, model=None, index: str = ":") -> Iterator[Frame]:
    """Frames of any file ASE reads (extended XYZ, POSCAR, CIF, ...), one at a time
    (``ase.io.iread``); types as in :func:`frame_from_ase`; a frame without a timestep gets
    its number in the file as ``step``. Needs ASE."""
    import ase.io

    images = ase.io.iread(str(path), index=index)
    for number in itertools.count():
        try:
            atoms = next(images)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - ASE's readers raise anything on bad input
            raise ValueError(f"{path}: neither a LAMMPS text dump nor a format ASE reads "
                             f"({type(exc).__name__}: {exc})") from None
        frame = frame_from_ase(atoms, model)
        if frame.step is None:
            frame.step = number  # the frame's number in the file, as a dump's timestep
        yield frame


def read_ase(path: str | Path, index: int = -1, model=None) -> Frame:
    """One frame (default the last) of any file ASE reads. Needs ASE."""
    import ase.io

    return frame_from_ase(ase.io.read(str(path), index=index), model)


def iter_frames(path: str | Path, model=None) -> Iterator[Frame]:
    """The frames of a LAMMPS text dump (plain or gzipped; read natively) or, when the file
    holds no LAMMPS dump frame, of any format ASE reads (extended XYZ ...; needs ASE)."""
    frames = iter_lammps_dump(path)
    first = next(frames, None)
    if first is not None:
        yield first
        yield from frames
        return
    yield from iter_ase(path, model)
