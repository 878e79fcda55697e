"""The in-situ HDF5 log: its one writer (:class:`PhaseLog`) and its one reader
(:func:`read_log` -> :class:`LogData`), one row per analysis call.

Layout (all 1-D datasets have one entry per row):

- ``step`` (int64), ``time``, ``temperature``, ``potential_energy``, ``pressure``,
  ``volume``, ``mean_confidence`` (float64; each with a ``units`` attribute);
- ``mean_mi`` (bits) and ``uncertain_fraction``: the mean mutual information of the
  atoms under MC dropout and the fraction above the model's MI threshold (ARISE Supp.
  Eq. 5; NaN when the analysis ran without MC dropout, absent from logs of older
  versions, which the reader fills with NaN); ``novel_fraction``: the fraction of atoms
  above the model's feature-space novelty threshold (NaN for a model without one);
  ``screened_fraction``: the fraction of atoms a model's screening network settled
  (:mod:`insitu.model.screen`; the rest went on to the model's own network, which is what
  makes a call cost more near a transition; NaN for a model without a screen);
- ``fractions/<class>`` and ``counts/<class>`` for every model class and ``unknown``;
- ``timings/<stage>``: seconds per stage (extract, descriptor = neighbour search +
  descriptor, inference, consensus = the neighbour consensus's plan, halo exchange and
  means, reduce, total), the maximum over ranks;
- ``extra/<name>``: LAMMPS variables the user asked to log beside the fractions (the ramps
  log ``t_target``, the thermostat set-point, and ``stage``: 1 heating, 2 hold, 3 quench);
- root attributes: ``classes`` (JSON), ``model_path``, ``model_sha256``, ``descriptor``
  (JSON), ``lammps_version``, ``n_ranks``, ``input_script``, ``id``, ``units``.

Each row is flushed to disk before :meth:`PhaseLog.append` returns (HDF5 file locking
off), so between calls the file on disk is complete: plain h5py reads it while the run
goes on, and a run killed with SIGKILL leaves every completed row readable. By default
the file is opened and closed at every row; the in-situ writer (``keep_open=True``) keeps
it and its columns open between rows, which costs ~0.2 ms a row instead of ~2 ms (a
serial cost every MPI rank waits for), until :meth:`PhaseLog.close` (in situ: at exit, or
when the script attaches the same ID again). The reader cuts every column to the rows
complete in all of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import h5py
import numpy as np

__all__ = ["PhaseLog", "LogData", "read_log", "append_problem", "THERMO_FIELDS",
           "UNCERTAINTY_FIELDS", "IDENTITY_ATTRS"]

_UNITS = {
    "metal": {"time": "ps", "temperature": "K", "potential_energy": "eV", "pressure": "bar",
              "volume": "Angstrom^3"},
    "real": {"time": "fs", "temperature": "K", "potential_energy": "kcal/mol",
             "pressure": "atm", "volume": "Angstrom^3"},
    "lj": {"time": "tau", "temperature": "epsilon/k_B", "potential_energy": "epsilon",
           "pressure": "epsilon/sigma^3", "volume": "sigma^3"},
}
THERMO_FIELDS = ("time", "temperature", "potential_energy", "pressure", "volume")
UNCERTAINTY_FIELDS = {"mean_mi": "bit", "uncertain_fraction": None, "novel_fraction": None,
                      "screened_fraction": None}
"""Root columns of the MC-dropout uncertainty (and of the screen's share) and their units."""
_GROUPS = ("fractions", "counts", "timings", "extra")


def _open(path: str | Path, mode: str) -> h5py.File:
    """h5py file without HDF5 file locking (a reader must not block the running writer)."""
    try:
        return h5py.File(path, mode, locking=False)
    except TypeError:  # h5py < 3.5
        return h5py.File(path, mode)


class PhaseLog:
    """Writer for the in-situ log (used on rank 0 only; also by the offline log of
    :func:`insitu.training.ramp_training.log_from_snapshots`).

    ``extra`` names the ``extra/<name>`` columns and ``extra_units`` their optional units.
    ``append=True`` continues an existing log (checked first with :func:`append_problem`):
    a row left incomplete by a killed run is dropped, every complete row is kept.
    """

    def __init__(self, path: str | Path, classes: Sequence[str], stages: Sequence[str],
                 extra: Sequence[str] = (), attrs: Mapping | None = None,
                 units: str = "metal", extra_units: Mapping[str, str] | None = None,
                 append: bool = False, keep_open: bool = False):
        self.path = Path(path)
        self.keep_open = keep_open
        self._file = None  # with keep_open: the open file and its columns' dataset ids
        self._column_ids: dict = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = list(classes) + ["unknown"]
        self.stages = list(stages)
        self.extra = list(extra)
        self.n_rows = 0
        if append and self.path.exists():
            with _open(self.path, "a") as f:
                datasets = _datasets(f)
                self.n_rows = min((len(ds) for ds in datasets), default=0)
                for ds in datasets:
                    ds.resize((self.n_rows,))
                for name, unit in UNCERTAINTY_FIELDS.items():  # a log of an older version
                    if name not in f:
                        _column(f, name, np.float64, unit).resize((self.n_rows,))
                        f[name][:] = np.nan
                f.attrs["appended_runs"] = int(f.attrs.get("appended_runs", 0)) + 1
            return
        unit_names = _UNITS.get(units, {})
        with _open(self.path, "w") as f:

            def column(name, dtype=np.float64, unit=None):
                _column(f, name, dtype, unit)

            column("step", np.int64)
            for name in THERMO_FIELDS:
                column(name, unit=unit_names.get(name))
            column("mean_confidence")
            for name, unit in UNCERTAINTY_FIELDS.items():
                column(name, unit=unit)
            for c in self.columns:
                column(f"fractions/{c}")
                column(f"counts/{c}", np.int64)
            for st in self.stages:
                column(f"timings/{st}", unit="s")
            for e in self.extra:
                column(f"extra/{e}", unit=(extra_units or {}).get(e))
            f.attrs["classes"] = json.dumps(list(classes))
            f.attrs["units"] = units
            for k, v in (attrs or {}).items():
                f.attrs[k] = v if isinstance(v, (int, float, str, np.number)) else json.dumps(v)

    def append(self, step: int, thermo: Mapping[str, float], counts: np.ndarray,
               mean_confidence: float, timings: Mapping[str, float],
               extra: Mapping[str, float] | None = None,
               uncertainty: Mapping[str, float] | None = None) -> None:
        """Append one row and flush it to disk. ``uncertainty``: ``mean_mi``,
        ``uncertain_fraction``, ``novel_fraction`` and ``screened_fraction`` of the row
        (NaN when not given)."""
        counts = np.asarray(counts, dtype=np.int64)
        total = max(int(counts.sum()), 1)
        values = {"step": step, "mean_confidence": mean_confidence}
        for name in UNCERTAINTY_FIELDS:
            values[name] = (uncertainty or {}).get(name, np.nan)
        for name in THERMO_FIELDS:
            values[name] = thermo.get(name, np.nan)
        for c, n in zip(self.columns, counts):
            values[f"counts/{c}"] = n
            values[f"fractions/{c}"] = n / total
        for s in self.stages:
            values[f"timings/{s}"] = timings.get(s, np.nan)
        for e in self.extra:
            values[f"extra/{e}"] = (extra or {}).get(e, np.nan)
        i = self.n_rows
        f = self._file or _open(self.path, "a")
        try:
            # h5py's low-level calls: its Dataset objects, resize and item assignment cost
            # ~0.2 ms per column; opening a column costs ~50 us, writing it ~3 us given
            # its memory type (~8 us when h5py derives the type from the value each time)
            one = h5py.h5s.create_simple((1,))
            row = h5py.h5s.create_simple((i + 1,), (h5py.h5s.UNLIMITED,))  # every column's
            row.select_hyperslab((i,), (1,))
            for key, value in values.items():
                column, memory_type = self._column_ids.get(key) or _open_column(f, key)
                column.set_extent((i + 1,))
                column.write(one, row, np.asarray([value], dtype=column.dtype), memory_type)
                if self.keep_open:
                    self._column_ids[key] = column, memory_type
            # readers trim every column to the shortest: a row cut short is not read
            f.flush()
        finally:
            if self.keep_open:
                self._file = f
            else:
                f.close()
        self.n_rows = i + 1

    def close(self) -> None:
        """Close the file if it was kept open (``keep_open``); rows are on disk already."""
        self._column_ids = {}
        if self._file is not None:
            self._file.close()
            self._file = None


def _open_column(f: h5py.File, name: str) -> tuple:
    """(dataset id, memory type of its values) of the column ``name`` for low-level writes."""
    column = h5py.h5d.open(f.id, name.encode())
    return column, h5py.h5t.py_create(column.dtype)


def _column(f: h5py.File, name: str, dtype=np.float64, unit: str | None = None):
    """An empty resizable 1-D column (with a ``units`` attribute when given)."""
    ds = f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
    if unit:
        ds.attrs["units"] = unit
    return ds


def _datasets(f: h5py.File) -> list:
    found = []
    f.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


IDENTITY_ATTRS = ("id", "model_sha256", "classes")
"""Root attributes that must agree for a run to continue an existing log."""


def append_problem(path: str | Path, attrs: Mapping, extra: Sequence[str],
                   start_step: int) -> str | None:
    """Why a run (its log ``attrs``, ``extra`` columns, first step after ``start_step``)
    cannot continue the log at ``path``; None when it can (or when there is no log)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with _open(path, "r") as f:
            old = {k: _attr(v) for k, v in f.attrs.items()}
            steps = np.asarray(f["step"][()]) if "step" in f else np.zeros(0, np.int64)
            old_extra = sorted(f["extra"]) if "extra" in f else []
    except (OSError, KeyError) as exc:
        return f"log={path} exists but is not a readable insitu log ({exc})"
    new = {k: (json.loads(json.dumps(v)) if not isinstance(v, (str, int, float)) else v)
           for k, v in attrs.items()}
    differ = [k for k in IDENTITY_ATTRS if old.get(k) != new.get(k)]
    if sorted(extra) != old_extra:
        differ.append("logged variables")
    if differ:
        return (f"log={path} exists and was written by another analysis (its "
                f"{', '.join(differ)} differ): choose another log= path, move the file "
                "away, or pass log_mode=overwrite to replace it")
    if len(steps) and int(steps.max()) > start_step:
        return (f"log={path} already holds rows up to step {int(steps.max())}, after this "
                f"run's start at step {start_step} (a rerun, or a restart from an earlier "
                "point): choose another log= path, or pass log_mode=overwrite to replace it")
    return None


@dataclass
class LogData:
    """Every column of an in-situ log (all rows, equal length), the root attributes (JSON
    ones decoded) and ``n_atoms``, the median total of the counts (None without counts).
    ``mean_mi`` (bits), ``uncertain_fraction``, ``novel_fraction`` and
    ``screened_fraction`` are NaN where not logged."""

    step: np.ndarray
    time: np.ndarray
    temperature: np.ndarray
    potential_energy: np.ndarray
    pressure: np.ndarray
    volume: np.ndarray
    mean_confidence: np.ndarray
    fractions: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    n_atoms: float | None = None
    mean_mi: np.ndarray | None = None
    uncertain_fraction: np.ndarray | None = None
    novel_fraction: np.ndarray | None = None
    screened_fraction: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.step)

    @property
    def classes(self) -> list:
        """The model's classes, in its order (``unknown`` left out)."""
        return [c for c in self.fractions if c != "unknown"]

    def pe_per_atom(self) -> np.ndarray:
        """Potential energy per atom (the total when the atom count is unknown)."""
        return self.potential_energy / self.n_atoms if self.n_atoms else self.potential_energy

    def select(self, mask: np.ndarray) -> LogData:
        """The rows where ``mask`` is true (attributes and atom count unchanged)."""
        mask = np.asarray(mask)
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in _GROUPS:
                v = {k: col[mask] for k, col in v.items()}
            elif isinstance(v, np.ndarray):
                v = v[mask]
            values[f.name] = v
        return LogData(**values)


def _attr(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.item() if isinstance(value, np.generic) else value


def read_log(path: str | Path) -> LogData:
    """Read an in-situ HDF5 log.  It may still be written: rows are cut to those complete in
    every column, and the file is opened without HDF5 file locking.  Raises ValueError for
    an HDF5 file without ``temperature`` and ``potential_energy``."""
    with _open(path, "r") as f:
        cols = {k: np.asarray(f[k][()]) for k in ("step", *THERMO_FIELDS, "mean_confidence",
                                                   *UNCERTAINTY_FIELDS)
                if k in f and isinstance(f[k], h5py.Dataset)}
        groups = {g: {k: np.asarray(v[()]) for k, v in f[g].items()} if g in f else {}
                  for g in _GROUPS}
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if "temperature" not in cols or "potential_energy" not in cols:
        raise ValueError(f"{path}: not an in-situ log (no temperature / potential_energy)")
    n = min(len(v) for v in [*cols.values(), *(c for g in groups.values() for c in g.values())])
    fractions = groups["fractions"]
    classes = attrs.get("classes")
    if isinstance(classes, list):  # keep the model's class order, unknown last
        order = [c for c in classes if c in fractions] + [c for c in fractions if c not in classes]
        fractions = {c: fractions[c] for c in order}
    cut = {g: {k: v[:n] for k, v in cols_g.items()}
           for g, cols_g in dict(groups, fractions=fractions).items()}
    for g in ("fractions", "extra", "timings"):
        cut[g] = {k: v.astype(float) for k, v in cut[g].items()}
    n_atoms = None
    if cut["counts"]:
        total = sum(cut["counts"].values())
        if len(total) and np.all(total > 0):
            n_atoms = float(np.median(total))

    def column(name, default=np.nan):
        return cols[name][:n] if name in cols else np.full(n, default)

    return LogData(step=column("step", np.arange(n)),
                   time=column("time", np.arange(n, dtype=float)),
                   temperature=column("temperature").astype(float),
                   potential_energy=column("potential_energy").astype(float),
                   pressure=column("pressure"), volume=column("volume"),
                   mean_confidence=column("mean_confidence"),
                   mean_mi=column("mean_mi").astype(float),
                   uncertain_fraction=column("uncertain_fraction").astype(float),
                   novel_fraction=column("novel_fraction").astype(float),
                   screened_fraction=column("screened_fraction").astype(float),
                   attrs=attrs, n_atoms=n_atoms, **cut)
