"""Auto-labelling of whole ramp snapshots from evidence in the run itself, without per-atom
annotation (Neighbors Map paper, Sec. 3.2 and 3.3.2 for Ni, 3.4.2 for Cu-Zr): the snapshots
a ramp writes with ``-var dump 1`` (with their energy, mean-squared displacement and CNA
fraction), the generic tools (stages, MSD rates, even draws, the run's settings), and
:func:`label_snapshots`, which applies a ramp system's own rules
(:mod:`insitu.training.ramp_systems`).  Temperatures are the thermostat set-points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

import numpy as np

from insitu.analysis.ramp_numerics import HEATING, HOLD, QUENCH

__all__ = ["Snapshot", "RampSnapshots", "WindowLabeller", "read_snapshot_index", "evenly",
           "ramp_stages", "msd_rates", "read_run_info", "label_snapshots"]

T = TypeVar("T")


@dataclass
class Snapshot:
    """One snapshot of a ramp written with ``-var dump 1``: a dump file and its row of
    ``snapshots/index.txt`` (stage, step, measured T, total PE, thermostat set-point, atoms,
    and where logged the mean-squared displacement in A^2 and the CNA fcc fraction)."""

    stage: int
    step: int
    temperature: float
    potential_energy: float
    target: float
    atoms: int
    path: Path
    msd: float = float("nan")
    cna_fcc: float = float("nan")

    @property
    def pe_per_atom(self) -> float:
        return self.potential_energy / self.atoms


class RampSnapshots(NamedTuple):
    """The snapshots of a ramp by stage, each list by step (see :func:`ramp_stages`)."""

    heat: list
    hold: list
    quench: list


class WindowLabeller(Protocol):
    """What :func:`label_snapshots` needs of a ramp system
    (:class:`insitu.training.ramp_systems.RampSystem` is one)."""

    name: str
    counts: Mapping[str, int]

    def label_windows(self, stages: RampSnapshots, counts: dict,
                      t_melt: float | None) -> tuple[dict, dict]:
        """({class: [Snapshot, ...]}, info about the windows used)."""


def read_snapshot_index(directory: str | Path) -> list[Snapshot]:
    """Snapshots of ``DIR/snapshots`` (or DIR itself) that have both a dump file and a row of
    ``index.txt``, by step (a step printed twice at a stage boundary is kept once, with the
    stage of its last row)."""
    directory = Path(directory)
    if (directory / "snapshots").is_dir():
        directory = directory / "snapshots"
    index = directory / "index.txt"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: run the ramp with -var dump 1")
    dumps = {}
    for f in directory.glob("*.dump"):
        try:
            dumps[int(f.name.split(".")[-2])] = f
        except ValueError:
            continue
    rows = {}
    for line in index.read_text().splitlines():
        w = line.split()
        if not w or w[0].startswith("#"):
            continue
        stage, step = int(float(w[0])), int(float(w[1]))
        more = [float(x) for x in w[6:8]] + [float("nan")] * (8 - max(len(w), 6))
        rows[step] = (stage, float(w[2]), float(w[3]), float(w[4]), int(float(w[5])), *more)
    return [Snapshot(r[0], step, r[1], r[2], r[3], r[4], dumps[step], r[5], r[6])
            for step, r in sorted(rows.items()) if step in dumps]


def evenly(items: Iterable[T], n: int | None) -> list[T]:
    """Up to n items, evenly spaced over the list (first and last included)."""
    items = list(items)
    if n is None or len(items) <= n:
        return items
    idx = np.unique(np.rint(np.linspace(0, len(items) - 1, n)).astype(int))
    return [items[i] for i in idx]


def ramp_stages(snapshots: Iterable[Snapshot], hold_skip: float = 0.2) -> RampSnapshots:
    """Heating, hold and quench snapshots by step.  The first ``hold_skip`` of the hold is
    left out, and the first 5 % of the heating (at least its first snapshot, a perfect
    lattice, not thermalised)."""
    snaps = sorted(snapshots, key=lambda s: s.step)
    heat = [s for s in snaps if s.stage == HEATING]
    hold = [s for s in snaps if s.stage == HOLD]
    quench = [s for s in snaps if s.stage == QUENCH]
    hold = hold[int(round(hold_skip * len(hold))):]
    heat = heat[max(1, int(round(0.05 * len(heat)))):]
    return RampSnapshots(heat, hold, quench)


def msd_rates(stage: Sequence[Snapshot], timestep_ps: float = 0.001,
              window: int = 5) -> np.ndarray:
    """Growth rate of the mean-squared displacement (A^2/ps) at each snapshot of one stage
    (by step): the least-squares slope of the ``msd_A2`` column of ``index.txt`` against
    time over ``window`` snapshots centred on it (fewer at the ends).  A diffusive liquid
    grows its MSD by 6 D per ps (Einstein relation); a crystal or a glass only by the slow
    growth of its vibrations.  NaN without an msd column or with one snapshot."""
    msd = np.array([s.msd for s in stage], float)
    time_ps = np.array([s.step for s in stage], float) * timestep_ps
    half = window // 2
    rate = np.full(len(stage), np.nan)
    for i in range(len(stage)):
        lo, hi = max(0, i - half), min(len(stage), i + half + 1)
        if hi - lo >= 2:
            t = time_ps[lo:hi] - time_ps[lo:hi].mean()
            rate[i] = float(np.sum(t * (msd[lo:hi] - msd[lo:hi].mean())) / np.sum(t * t))
    return rate


def read_run_info(directory: str | Path) -> dict:
    """The settings a ramp wrote to ``snapshots/run.txt`` (``-var dump 1``): ``system``,
    ``seed`` (the velocity seed), ``cells`` and the rates, as {name: value} with numbers as
    numbers; {} for a ramp without that file."""
    directory = Path(directory)
    path = (directory / "snapshots" / "run.txt" if (directory / "snapshots").is_dir()
            else directory / "run.txt")
    if not path.is_file():
        return {}
    words = path.read_text().split()
    info: dict = {}
    for key, value in zip(words[::2], words[1::2]):
        try:
            num = float(value)
            info[key] = int(num) if num.is_integer() and "e" not in value.lower() else num
        except ValueError:
            info[key] = value
    return info


def label_snapshots(snapshots: Iterable[Snapshot], system: WindowLabeller,
                    t_melt: float | None = None, counts: Mapping[str, int] | None = None,
                    hold_skip: float = 0.2) -> dict:
    """Whole-snapshot labels from the high-confidence windows of ``system`` (a
    :class:`insitu.training.ramp_systems.RampSystem`, e.g. ``RAMP_SYSTEMS["ni"]``), as in
    the paper: no atom is annotated.

    The stages are split by :func:`ramp_stages` (``hold_skip``), then the system's own
    labelling function picks the windows and draws snapshots evenly over each, up to
    ``counts`` per class (default: the system's, the paper's numbers).  ``t_melt``
    overrides the melting temperature where the system uses one (Ni: the PE jump).
    Returns {class: [Snapshot, ...]} and, under the key ``'_info'``, the windows used.
    Raises ValueError when a window holds no snapshot.
    """
    counts = dict(system.counts, **(counts or {}))
    out, info = system.label_windows(ramp_stages(snapshots, hold_skip), counts, t_melt)
    for c, lst in out.items():
        if not lst:
            raise ValueError(f"{system.name}: no snapshot in the {c} window ({info}); run the "
                             "ramp with -var dump 1 and a dump_every small enough")
    out["_info"] = info
    return out
