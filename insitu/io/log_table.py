"""The in-situ log as one table: equal-length columns that ``pandas.DataFrame`` takes as they
are, and the log's metadata as attributes.

    >>> import pandas as pd
    >>> from insitu.io.log_table import read_table
    >>> table = read_table("out/ni_ramp/log.h5")
    >>> df = pd.DataFrame(table)
    >>> df.attrs.update(table.attrs)

Columns: ``step``, ``time``, ``temperature``, ``potential_energy``, ``pressure``,
``volume``, ``mean_confidence``, ``pe_per_atom``, ``fraction_<class>`` and
``count_<class>`` for every class and ``unknown``, ``timing_<stage>_s`` (seconds per
stage), the logged LAMMPS variables under their own names (``t_target``, ``stage``,
``cna_fcc`` ...) and any other per-row dataset of the log (e.g. the uncertainty columns
``mi`` / ``uncertain`` of MC-dropout models) under its name. The rows are those complete in
every column (:func:`insitu.io.phase_log.read_log`).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np

from .phase_log import LogData, read_log

__all__ = ["LogTable", "read_table", "table_from_log"]

GROUP_PREFIX = {"fractions": "fraction_", "counts": "count_", "timings": "timing_",
                "extra": ""}
"""How the log's groups name their columns in the table (timings also get ``_s``)."""


class LogTable(dict):
    """Column name -> 1-D numpy array, all of one length (``pandas.DataFrame(table)``).

    ``attrs``: the log's root attributes (JSON ones decoded: ``classes``, ``model_path``,
    ``n_ranks``, ``units`` ...), ``n_atoms`` and ``column_units`` (column -> unit)."""

    attrs: dict

    def __init__(self, columns: dict, attrs: dict):
        super().__init__(columns)
        self.attrs = attrs

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.values()))) if self else 0


def table_from_log(log: LogData) -> LogTable:
    """The table of an already read log (no file access: without the extra datasets that
    only :func:`read_table` finds)."""
    n = len(log)
    columns: dict = {}
    for f in fields(log):
        value = getattr(log, f.name)
        if isinstance(value, np.ndarray) and value.ndim == 1 and len(value) == n:
            columns[f.name] = value
        elif f.name in GROUP_PREFIX:
            for key, col in value.items():
                suffix = "_s" if f.name == "timings" else ""
                columns[f"{GROUP_PREFIX[f.name]}{key}{suffix}"] = np.asarray(col)[:n]
    columns["pe_per_atom"] = log.pe_per_atom()
    attrs = dict(log.attrs)
    attrs["n_atoms"] = log.n_atoms
    return LogTable(columns, attrs)


def _datasets_with_units(path: str | Path) -> tuple[dict, dict]:
    """(top-level 1-D datasets by name, units by dataset path) of an HDF5 log."""
    top, units = {}, {}
    with h5py.File(path, "r", locking=False) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and "units" in obj.attrs:
                u = obj.attrs["units"]
                units[name] = u.decode() if isinstance(u, bytes) else str(u)
        f.visititems(visit)
        for name, obj in f.items():
            if isinstance(obj, h5py.Dataset) and obj.ndim == 1:
                top[name] = np.asarray(obj[()])
    return top, units


def read_table(path: str | Path) -> LogTable:
    """Read an in-situ HDF5 log as a :class:`LogTable` (see the module docstring)."""
    table = table_from_log(read_log(path))
    n = table.n_rows
    top, units = _datasets_with_units(path)
    for name, values in top.items():
        if name not in table and len(values) >= n:
            table[name] = values[:n]
    column_units = {}
    for name, unit in units.items():
        group, _, key = name.rpartition("/")
        column = (f"{GROUP_PREFIX[group]}{key}" + ("_s" if group == "timings" else "")
                  if group in GROUP_PREFIX else name)
        if column in table:
            column_units[column] = unit
    table.attrs["column_units"] = column_units
    return table
