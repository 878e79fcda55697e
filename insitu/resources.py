"""Where the files insitu ships and uses are: models, LAMMPS inputs, LAMMPS potentials.

Shipped models and the ramps' LAMMPS inputs are package data (``insitu/data/models``,
``insitu/data/lammps_inputs`` in an installed wheel; the repository's ``models/`` and
``lammps_inputs/`` folders in a source checkout). Environment variables override both:
``INSITU_MODELS`` and ``INSITU_LAMMPS_INPUTS`` (folders), ``LAMMPS_POTENTIALS`` (LAMMPS's
own variable for potential files).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

__all__ = ["models_dir", "model_path", "lammps_inputs_dir", "potentials_dir",
           "source_checkout"]

_PACKAGE_ROOT = Path(__file__).resolve().parent


def source_checkout() -> Path | None:
    """The repository root when insitu runs from a source checkout, else None."""
    root = _PACKAGE_ROOT.parent
    return root if (root / "pyproject.toml").is_file() and (root / "models").is_dir() else None


def _data_dir(env_var: str, package: str, checkout_name: str) -> Path:
    if os.environ.get(env_var):
        return Path(os.environ[env_var])
    try:
        # a data folder without __init__.py is a namespace package: read its locations
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    root = source_checkout()
    if root is not None:
        return root / checkout_name
    raise FileNotFoundError(f"insitu's {checkout_name} folder is not installed with the package "
                            f"and no source checkout was found; set {env_var}")


def models_dir() -> Path:
    """Folder of the shipped ``.onnx`` models and their cards."""
    return _data_dir("INSITU_MODELS", "insitu.data.models", "models")


def model_path(name: str) -> Path:
    """Path of a shipped model by name (``crystal-nm`` or ``crystal-nm.onnx``); a path
    that exists is returned unchanged."""
    p = Path(name)
    if p.is_file():
        return p
    stem = p.name[:-5] if p.name.endswith(".onnx") else p.name
    return models_dir() / f"{stem}.onnx"


def lammps_inputs_dir() -> Path:
    """Folder of the papers' ramp inputs (``ni_melt_quench.lmp`` ...)."""
    return _data_dir("INSITU_LAMMPS_INPUTS", "insitu.data.lammps_inputs", "lammps_inputs")


def potentials_dir(probe: str = "Ni_u3.eam") -> Path | None:
    """LAMMPS's potentials folder (``LAMMPS_POTENTIALS``, then Debian's and /usr/local's);
    None when no candidate holds ``probe``."""
    for cand in (os.environ.get("LAMMPS_POTENTIALS"), "/usr/share/lammps/potentials",
                 "/usr/local/share/lammps/potentials"):
        if cand and Path(cand, probe).is_file():
            return Path(cand)
    return None
