"""Checks made once, when a model is attached to a LAMMPS run: they turn a misuse into one
clear error before any MD step is spent (model path, units, atom types, log file)."""

from __future__ import annotations

import os
from pathlib import Path

from ..model.onnx_format import LENGTH_UNIT

__all__ = ["resolve_model_path", "units_problem", "atom_types_problem", "atom_types_note",
           "log_path_problem", "ANGSTROM_UNITS"]

ANGSTROM_UNITS = ("metal", "real")
"""LAMMPS unit styles whose length unit is the Angstrom."""


def resolve_model_path(path: str) -> Path:
    """An existing model file: the path as given (relative to the working directory), else
    a shipped model of that name (``crystal-nm``). FileNotFoundError names both tries."""
    given = Path(path).expanduser()
    if given.is_file():
        return given.resolve()
    from ..resources import model_path, models_dir

    shipped = model_path(given.name)
    if shipped.is_file():
        return shipped
    try:
        names = sorted(p.stem for p in models_dir().glob("*.onnx"))
    except FileNotFoundError:
        names = []
    raise FileNotFoundError(f"model file '{path}' not found (working directory "
                            f"{os.getcwd()}); give an absolute path or the name of a shipped "
                            f"model ({', '.join(names) or 'none found'})")


def units_problem(units: str, model_name: str) -> str | None:
    """An error when LAMMPS's length unit is not the model's (Angstrom)."""
    if units in ANGSTROM_UNITS:
        return None
    return (f"LAMMPS 'units {units}' does not measure lengths in Angstrom, but the "
            f"descriptor of model '{model_name}' was trained with lengths in {LENGTH_UNIT} "
            f"(units metal or real): its cutoff and its labels would be meaningless here. "
            f"Run with units metal or real, or use a model trained in these units")


def atom_types_problem(model_types: dict | None, n_types: int, model_name: str) -> str | None:
    """An error when the model names its atom types and they are not this system's."""
    if not model_types:
        return None
    known = sorted(int(k) for k in model_types)
    if known == list(range(1, n_types + 1)):
        return None
    names = ", ".join(f"{k}: {model_types[str(k)] if str(k) in model_types else model_types[k]}"
                      for k in known)
    return (f"model '{model_name}' was trained for {len(known)} atom type(s) ({names}) but "
            f"this system declares {n_types} atom type(s): its labels would be meaningless. "
            f"Use a model trained for these elements (`insitu train`), or one without "
            f"atom-type metadata such as crystal-nm for a single-element system")


def atom_types_note(model_types: dict | None, n_types: int, descriptor, model_name: str
                    ) -> str | None:
    """What a model without atom-type metadata assumes (printed once at attach)."""
    if model_types:
        return None
    weights = getattr(descriptor, "channel_weights", None)
    how = ("one geometric channel: every atom type is treated alike" if not weights else
           f"channel weights {weights}")
    return (f"note: model '{model_name}' has no atom-type metadata; with {n_types} atom "
            f"type(s) here it uses {how}. Check that it was trained for this material.")


def log_path_problem(path: str) -> str | None:
    """An error when the HDF5 log cannot be created or appended to at ``path``."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the folder of the log file log={path}: {exc.strerror}"
    if target.is_dir():
        return f"log={path} is a folder; give a file path such as log={path}/log.h5"
    if target.exists() and not os.access(target, os.W_OK):
        return f"log={path} exists and is not writable; choose another log= path"
    if not target.exists() and not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write the log file log={path}: folder {parent} is not writable"
    return None
