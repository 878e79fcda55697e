"""Append-only HDF5 log of in-situ analysis calls, one row per call.

Layout (all 1-D datasets have one entry per row):

- ``step`` (int64), ``time``, ``temperature``, ``potential_energy``, ``pressure``,
  ``volume``, ``mean_confidence`` (float64; each with a ``units`` attribute);
- ``fractions/<class>`` and ``counts/<class>`` for every model class and ``unknown``;
- ``timings/<stage>``: seconds per stage (extract, descriptor = neighbour search +
  descriptor, inference, reduce, total), the maximum over ranks;
- ``extra/<name>``: LAMMPS variables the user asked to log beside the fractions;
- root attributes: ``classes`` (JSON), ``model_path``, ``model_sha256``, ``descriptor``
  (JSON), ``lammps_version``, ``n_ranks``, ``input_script``, ``id``, ``units``.

The file is opened, extended by one row and closed at every call (HDF5 file locking
off), so between calls it is a complete, closed file: plain h5py reads it while the run
goes on, and a run killed with SIGKILL leaves every completed row readable. The cost, a
few milliseconds per call, is small next to the analysis.
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
        unit_names = _UNITS.get(units, {})
        with h5py.File(self.path, "w", locking=False) as f:

            def column(name, dtype=np.float64, unit=None):
                ds = f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                                      chunks=(256,))
                if unit:
                    ds.attrs["units"] = unit

            column("step", np.int64)
            for name in THERMO_FIELDS:
                column(name, unit=unit_names.get(name))
            column("mean_confidence")
            for c in self.columns:
                column(f"fractions/{c}")
                column(f"counts/{c}", np.int64)
            for st in self.stages:
                column(f"timings/{st}", unit="s")
            for e in self.extra:
                column(f"extra/{e}")
            f.attrs["classes"] = json.dumps(list(classes))
            f.attrs["units"] = units
            for k, v in (attrs or {}).items():
                f.attrs[k] = v if isinstance(v, (int, float, str, np.number)) else json.dumps(v)

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
        with h5py.File(self.path, "a", locking=False) as f:
            for key, value in values.items():
                ds = f[key]
                ds.resize((i + 1,))
                ds[i] = value
            # 'step' is written last-but-not-least by ordering: readers trim to the shortest.
            f.flush()
        self.n_rows = i + 1

    def close(self) -> None:
        """Nothing stays open between rows; kept for symmetry."""


def read_log(path: str | Path) -> dict:
    """Read a log into a dict of numpy arrays (nested groups flattened as 'group/name')
    plus ``attrs``. Works while the writer is still running."""
    out: dict = {}
    with h5py.File(path, "r", locking=False) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    n = min((len(v) for k, v in out.items() if k != "attrs"), default=0)
    # Datasets are resized one after another: trim to the rows complete in all of them.
    for k in list(out):
        if k != "attrs":
            out[k] = out[k][:n]
    return out
