"""The offline GIIP pipeline on LAMMPS dumps: sample training LAEs, extend a model to every
atom of a dump and write it back for OVITO.

Selection (the paper's Sec. 3.1 / 3.2): ``random`` centres, or ``energy`` extremes (the
``n_low`` lowest and the rest highest per-atom potential energies, e.g. ``c_pe`` of
``compute pe/atom``), optionally only atoms of some types and away from the free surfaces
of non-periodic directions (``edge_margin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insitu.frame import Frame

from .lae import GIIPSettings, LAESet, concat_laes, extract_laes
from .model import GIIPModel

__all__ = ["eligible_atoms", "select_centers", "LAESample", "sample_frames",
           "project_frame", "write_projection_dump"]


def eligible_atoms(frame: Frame, center_types=(), edge_margin: float = 0.0) -> np.ndarray:
    """Indices of atoms that may be centres: of ``center_types`` (all if empty) and at
    least ``edge_margin`` from the extent of the atoms along non-periodic directions."""
    ok = np.ones(len(frame), bool)
    if len(center_types):
        ok &= np.isin(frame.types, np.asarray(center_types))
    if edge_margin > 0:
        for k in range(3):
            if not frame.pbc[k]:
                x = frame.positions[:, k]
                if np.ptp(x) > 2 * edge_margin:
                    ok &= (x >= x.min() + edge_margin) & (x <= x.max() - edge_margin)
    return np.flatnonzero(ok)


def select_centers(frame: Frame, n: int, method: str = "random", rng=None,
                   center_types=(), edge_margin: float = 0.0, energy_column: str = "c_pe",
                   n_low: int = 0) -> np.ndarray:
    """Indices of ``n`` training centres: random, or the ``n_low`` lowest and ``n - n_low``
    highest per-atom energies (column ``energy_column`` of the dump)."""
    cand = eligible_atoms(frame, center_types, edge_margin)
    n = min(int(n), len(cand))
    if method == "random":
        rng = rng if rng is not None else np.random.default_rng(0)
        return np.sort(rng.choice(cand, size=n, replace=False))
    if method != "energy":
        raise ValueError(f"selection method must be random or energy, got {method!r}")
    cols = frame.info.get("columns", {})
    if energy_column not in cols:
        raise ValueError(f"energy selection needs the per-atom column {energy_column!r} in "
                         f"the dump (has {sorted(cols)}); add compute pe/atom to the dump")
    order = cand[np.argsort(np.asarray(cols[energy_column], float)[cand], kind="stable")]
    n_low = min(int(n_low), n)
    pick = np.concatenate([order[:n_low], order[len(order) - (n - n_low):]])
    return np.sort(np.unique(pick))


@dataclass
class LAESample:
    """Sampled LAEs with provenance: source index (which input), frame step, atom id,
    centre type, per-atom energy (NaN if absent)."""

    laes: LAESet
    source: np.ndarray
    step: np.ndarray
    atom_id: np.ndarray
    center_type: np.ndarray
    energy: np.ndarray
    settings: GIIPSettings

    def save(self, path: str | Path) -> Path:
        import json

        np.savez_compressed(path, settings=json.dumps(self.settings.to_dict()),
                            source=self.source, step=self.step, atom_id=self.atom_id,
                            center_type=self.center_type, energy=self.energy,
                            **self.laes.to_arrays())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> LAESample:
        import json

        with np.load(path, allow_pickle=False) as z:
            return cls(LAESet.from_arrays(z), z["source"], z["step"], z["atom_id"],
                       z["center_type"], z["energy"],
                       GIIPSettings.from_dict(json.loads(str(z["settings"]))))


def sample_frames(frames: list[Frame], settings: GIIPSettings, n_per_frame: int,
                  method: str = "random", seed: int = 0, center_types=(),
                  edge_margin: float = 0.0, energy_column: str = "c_pe",
                  n_low: int = 0) -> LAESample:
    """Training LAEs from several frames (``n_per_frame`` each)."""
    rng = np.random.default_rng(seed)
    parts, src, steps, ids, types, energy = [], [], [], [], [], []
    for k, frame in enumerate(frames):
        idx = select_centers(frame, n_per_frame, method, rng, center_types, edge_margin,
                             energy_column, n_low)
        parts.append(extract_laes(frame, idx, settings))
        src.append(np.full(len(idx), k))
        steps.append(np.full(len(idx), -1 if frame.step is None else frame.step))
        ids.append(frame.ids[idx])
        types.append(frame.types[idx])
        col = frame.info.get("columns", {}).get(energy_column)
        energy.append(np.full(len(idx), np.nan) if col is None else np.asarray(col)[idx])
    cat = np.concatenate
    return LAESample(concat_laes(parts), cat(src), cat(steps), cat(ids), cat(types),
                     cat(energy).astype(float), settings)


def project_frame(model: GIIPModel, frame: Frame, processes: int = 1,
                  edge_margin: float = 0.0):
    """Project every eligible atom of a frame (the model's centre types, away from free
    surfaces): (index of the projected atoms, Projection)."""
    idx = eligible_atoms(frame, model.center_types, edge_margin)
    laes = extract_laes(frame, idx, model.settings)
    return idx, model.project(laes, processes=processes), laes


def write_projection_dump(path: str | Path, frame: Frame, idx: np.ndarray, proj,
                          weight_sums: np.ndarray | None = None, n_coords: int = 4) -> Path:
    """LAMMPS dump of the frame with per-atom columns ``giip_cluster`` (-1: not
    projected), ``giip_c1..`` (diffusion coordinates, NaN when not projected),
    ``giip_nearest`` (distance to the nearest training LAE) and ``giip_wsum`` (sum of the
    LAE weights); OVITO colours by any of them."""
    from insitu.io.lammps_dump import write_lammps_dump

    n = len(frame)
    cols: dict[str, np.ndarray] = {}
    cluster = np.full(n, -1, np.int64)
    cluster[idx] = proj.cluster
    cols["giip_cluster"] = cluster
    k = min(n_coords, proj.coords.shape[1])
    for c in range(k):
        v = np.full(n, np.nan)
        v[idx] = proj.coords[:, c]
        cols[f"giip_c{c + 1}"] = v
    near = np.full(n, np.nan)
    near[idx] = proj.nearest
    cols["giip_nearest"] = near
    if weight_sums is not None:
        ws = np.full(n, np.nan)
        ws[idx] = weight_sums
        cols["giip_wsum"] = ws
    path = Path(path)
    with open(path, "w") as fh:
        write_lammps_dump(fh, frame, cols)
    return path
