"""Append-only HDF5 log of in-situ analysis calls, one row per call.

Layout (all 1-D datasets have one entry per row):

- ``step`` (int64), ``time``, ``temperature``, ``potential_energy``, ``pressure``,
  ``volume``, ``mean_confidence`` (float64; each with a ``units`` attribute);
- ``fractions/<class>`` and ``counts/<class>`` for every model class and ``unknown``;
- ``timings/<stage>``: seconds per stage, the maximum over ranks;
- ``extra/<name>``: LAMMPS variables the user asked to log beside the fractions;
- root attributes: ``classes`` (JSON), ``model_path``, ``model_sha256``, ``descriptor``
  (JSON), ``lammps_version``, ``n_ranks``, ``input_script``, ``id``, ``units``.

The file is written in SWMR mode and flushed after every row, so it can be read with
plain h5py while the run goes on, and a killed run leaves every completed row readable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

_UNITS = {
    "metal": {"time": "ps", "temperature": "K", "potential_energy": "eV", "pressure": "bar",
              "volume": "Angstrom^3"},
    "real": {"time": "fs", "temperature": "K", "potential_energy": "kcal/mol",
             "pressure": "atm", "volume": "Angstrom^3"},
    "lj": {"time": "tau", "temperature": "epsilon/k_B", "potential_energy": "epsilon",
           "pressure": "epsilon/sigma^3", "volume": "sigma^3"},
}
THERMO_FIELDS = ("time", "temperature", "potential_energy", "pressure", "volume")


class PhaseLog:
    """Writer for the in-situ log (used on rank 0 only)."""

    def __init__(self, path: str | Path, classes: Sequence[str], stages: Sequence[str],
                 extra: Sequence[str] = (), attrs: Mapping | None = None,
                 units: str = "metal"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = list(classes) + ["unknown"]
        self.stages = list(stages)
        self.extra = list(extra)
        self.n_rows = 0
        self._file = h5py.File(self.path, "w", libver="latest")
        f = self._file
        unit_names = _UNITS.get(units, {})

        def column(name, dtype=np.float64, unit=None):
            ds = f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
            if unit:
                ds.attrs["units"] = unit
            return ds

        self._ds = {"step": column("step", np.int64)}
        for name in THERMO_FIELDS:
            self._ds[name] = column(name, unit=unit_names.get(name))
        self._ds["mean_confidence"] = column("mean_confidence")
        for c in self.columns:
            self._ds[f"fractions/{c}"] = column(f"fractions/{c}")
            self._ds[f"counts/{c}"] = column(f"counts/{c}", np.int64)
        for s in self.stages:
            self._ds[f"timings/{s}"] = column(f"timings/{s}", unit="s")
        for e in self.extra:
            self._ds[f"extra/{e}"] = column(f"extra/{e}")
        f.attrs["classes"] = json.dumps(list(classes))
        f.attrs["units"] = units
        for k, v in (attrs or {}).items():
            f.attrs[k] = v if isinstance(v, (int, float, str, np.number)) else json.dumps(v)
        # From here on readers may open the file concurrently; no new objects or attributes.
        f.swmr_mode = True

    def append(self, step: int, thermo: Mapping[str, float], counts: np.ndarray,
               mean_confidence: float, timings: Mapping[str, float],
               extra: Mapping[str, float] | None = None) -> None:
        """Append one row and flush it to disk."""
        counts = np.asarray(counts, dtype=np.int64)
        total = max(int(counts.sum()), 1)
        values = {"step": step, "mean_confidence": mean_confidence}
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
        for key, ds in self._ds.items():
            ds.resize((i + 1,))
            ds[i] = values[key]
        self.n_rows = i + 1
        self._file.flush()

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()


def read_log(path: str | Path) -> dict:
    """Read a log into a dict of numpy arrays (nested groups flattened as 'group/name')
    plus ``attrs``. Works while the writer is still running (SWMR)."""
    out: dict = {}
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                obj.refresh()
                out[name] = obj[()]
        f.visititems(visit)
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    n = min((len(v) for k, v in out.items() if k != "attrs"), default=0)
    # Datasets are resized one after another: trim to the rows complete in all of them.
    for k in list(out):
        if k != "attrs":
            out[k] = out[k][:n]
    return out
