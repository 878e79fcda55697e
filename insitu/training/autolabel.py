"""Auto-labelling of whole ramp snapshots from high-confidence windows of temperature and
energy, without per-atom annotation (Neighbors Map paper, Sec. 3.3.2 for Ni and 3.4.2 for
Cu-Zr): the snapshots a ramp writes with ``-var dump 1``, the generic window tools, and
:func:`label_snapshots`, which applies a ramp system's own windows
(:mod:`insitu.training.ramp_systems`).  Temperatures are the thermostat set-points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

import numpy as np

from insitu.analysis.ramp_numerics import HEATING, HOLD, QUENCH, linear_fit, running_mean

__all__ = ["Snapshot", "RampSnapshots", "WindowLabeller", "read_snapshot_index", "evenly",
           "ramp_stages", "fcc_energy_window", "label_snapshots"]

T = TypeVar("T")


@dataclass
class Snapshot:
    """One snapshot of a ramp written with ``-var dump 1``: a dump file and its row of
    ``snapshots/index.txt`` (stage, step, measured T, total PE, thermostat set-point, atoms)."""

    stage: int
    step: int
    temperature: float
    potential_energy: float
    target: float
    atoms: int
    path: Path

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
        rows[step] = (stage, float(w[2]), float(w[3]), float(w[4]), int(float(w[5])))
    return [Snapshot(r[0], step, r[1], r[2], r[3], r[4], dumps[step])
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


def fcc_energy_window(heat: Sequence[Snapshot], t_melt: float, jump: dict,
                      fit_fraction: float = 2.0 / 3.0, margin_k: float = 100.0,
                      max_residual: float = 0.10, smooth: int = 3) -> tuple[list, dict]:
    """High-confidence crystal window of a heating ramp from its energy (Ni's fcc class, see
    :func:`insitu.training.ramp_systems.label_fcc_melt_quench`).  ``heat``: heating
    snapshots by step; ``jump``: the :func:`insitu.analysis.ramp_numerics.pe_jump_temperature`
    result (``lo``: start of the step, ``delta_pe``: its height).

    The crystal line is fitted below ``fit_fraction`` x ``t_melt``; snapshots are accepted
    from the cold end up to, not including, the first one hotter than
    min(jump onset, t_melt) - ``margin_k`` or whose residual from the crystal line (running
    mean over ``smooth`` snapshots) exceeds ``max_residual`` x the jump.  Returns
    (accepted snapshots, info dict)."""
    heat = sorted(heat, key=lambda s: s.step)
    t = np.array([s.target for s in heat], float)
    e = np.array([s.pe_per_atom for s in heat], float)
    t_fit = fit_fraction * t_melt
    fit = t < t_fit
    info = dict(crystal_line_fit_below=float(t_fit))
    dpe = jump.get("delta_pe", float("nan"))
    if fit.sum() < 3 or not np.isfinite(dpe) or dpe <= 0:
        acc = [s for s in heat if s.target < t_fit]
        info.update(fcc_rule="fallback: below 2/3 T_m (no crystal line or jump height)",
                    fcc_below=float(t_fit))
        return acc, info
    ks, bs = linear_fit(t[fit], e[fit])
    resid = running_mean((e - (ks * t + bs)) / dpe, smooth)
    onset = min(float(jump.get("lo", t_melt)), float(t_melt))
    t_cut = onset - margin_k
    n = 0
    stop = "end of heating"
    while n < len(heat):
        if t[n] >= t_cut:
            stop = f"margin: set-point >= PE-jump onset {onset:.0f} K - {margin_k:.0f} K"
            break
        if resid[n] > max_residual:
            stop = (f"energy: PE {100 * resid[n]:.0f} % of the jump above the crystal line at "
                    f"{t[n]:.0f} K")
            break
        n += 1
    info.update(fcc_rule=f"PE on the crystal line (residual <= {100 * max_residual:.0f} % of "
                f"the jump, running mean over {smooth}), set-point < PE-jump onset - "
                f"{margin_k:.0f} K",
                crystal_line_eV_per_atom=[float(ks), float(bs)],
                pe_jump_onset=onset, fcc_below=float(t_cut), fcc_stopped_by=stop,
                fcc_accepted_up_to=float(t[n - 1]) if n else None)
    return heat[:n], info


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
