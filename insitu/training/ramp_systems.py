"""The ramp systems of the papers, as a registry: each :class:`RampSystem` names its LAMMPS
input, classes, descriptor and training settings, and carries its own labelling function
(the paper's high-confidence windows, Neighbors Map paper Sec. 3.3.2 for Ni and 3.4.2 for
Cu-Zr).  Adding a system is adding one entry to :data:`RAMP_SYSTEMS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from insitu.analysis.ramp_numerics import linear_fit, pe_jump_temperature
from insitu.training.autolabel import (
    RampSnapshots,
    Snapshot,
    evenly,
    fcc_energy_window,
    label_snapshots,
)

__all__ = ["RampSystem", "RAMP_SYSTEMS", "get_ramp_system", "label_fcc_melt_quench",
           "label_glass_quench"]


def label_fcc_melt_quench(stages: RampSnapshots, counts: dict, t_melt: float | None, *,
                          fcc_fit_fraction_of_tm: float, fcc_margin_k: float,
                          fcc_max_residual: float, fcc_smooth: int, liquid_quench_t: float,
                          liquid_quench_dt: float, amorphous_below: float
                          ) -> tuple[dict, dict]:
    """Windows of an fcc metal heated through melting, held, and quenched to a glass (Ni):

    fcc       heating snapshots whose PE lies on the crystal line (an energy window, not
              the paper's temperature window "below 2/3 T_m", :func:`fcc_energy_window`):
              1. the crystal line PE_s(T) is a straight line fitted to the heating below
                 ``fcc_fit_fraction_of_tm`` x T_m, where T_m is the PE-jump temperature of
                 this heating (or ``t_melt``);
              2. the window starts at the cold end of the heating and ends before the first
                 snapshot that is hotter than the PE-jump onset minus ``fcc_margin_k`` (onset
                 = the cooler of the jump's half-height start and T_m), or whose residual
                 from the crystal line, as a running mean over ``fcc_smooth`` snapshots,
                 exceeds ``fcc_max_residual`` x the melting jump;
              3. the fcc snapshots are drawn evenly over the whole window, so the hottest
                 accepted snapshot is always among them.
              Why not "below 2/3 T_m": on a fast ramp the crystal superheats, so the model
              never saw fcc between 2/3 T_m and the jump and called hot, still crystalline
              fcc liquid ~150 K before the PE jump.  Without a finite jump height the window
              falls back to below 2/3 T_m;
    liquid    the hold and the quench within ``liquid_quench_t`` +- ``liquid_quench_dt``
              (a third of the liquid count, at least one, from the quench);
    amorphous the quench below ``amorphous_below``, and only snapshots whose energy lies
              above the crystal line of the heating by more than 30 % of the melting jump: a
              crystallised cold end is not labelled amorphous.
    """
    heat, hold, quench = stages
    info = {}
    jump = pe_jump_temperature([s.target for s in heat], [s.pe_per_atom for s in heat],
                               smooth=3)
    if t_melt is None:
        t_melt = jump["t_jump"]
    fcc, fcc_info = fcc_energy_window(heat, t_melt, jump, fit_fraction=fcc_fit_fraction_of_tm,
                                      margin_k=fcc_margin_k, max_residual=fcc_max_residual,
                                      smooth=fcc_smooth)
    fit_rows = [s for s in heat if s.target < fcc_info["crystal_line_fit_below"]]
    t_l, dt_l = liquid_quench_t, liquid_quench_dt
    liq_q = [s for s in quench if abs(s.target - t_l) <= dt_l]
    n_q = min(len(liq_q), max(1, counts["liquid"] // 3))
    liquid = evenly(hold, counts["liquid"] - n_q) + evenly(liq_q, n_q)
    cold = [s for s in quench if s.target < amorphous_below]
    # energy check against crystallisation: a glass keeps a good part of the heat of
    # fusion (PE above the crystal line by > 30 % of the melting jump); a crystallised
    # cold end falls back onto the crystal line and is not labelled amorphous.
    amorphous = cold
    if len(fit_rows) >= 2 and cold and np.isfinite(jump["delta_pe"]):
        ks, bs = linear_fit(np.array([s.target for s in fit_rows]),
                            np.array([s.pe_per_atom for s in fit_rows]))
        amorphous = [s for s in cold
                     if s.pe_per_atom - (ks * s.target + bs) > 0.3 * jump["delta_pe"]]
        info["excluded_crystallised"] = [s.step for s in cold if s not in amorphous]
        info["pe_jump_eV_per_atom"] = jump["delta_pe"]
    out = {"fcc": evenly(fcc, counts["fcc"]), "liquid": liquid,
           "amorphous": evenly(amorphous, counts["amorphous"])}
    info.update(t_melt=t_melt, **fcc_info, liquid_quench=[t_l - dt_l, t_l + dt_l],
                amorphous_below=amorphous_below)
    return out, info


def label_glass_quench(stages: RampSnapshots, counts: dict, t_melt: float | None, *,
                       liquid_above: float, amorphous_below: float) -> tuple[dict, dict]:
    """Windows of a glass former held liquid and quenched (Cu-Zr): liquid = the hold and
    the quench above ``liquid_above``; amorphous = the quench below ``amorphous_below``
    (``t_melt`` is not used)."""
    liq = stages.hold + [s for s in stages.quench if s.target > liquid_above]
    amo = [s for s in stages.quench if s.target < amorphous_below]
    out = {"liquid": evenly(liq, counts["liquid"]),
           "amorphous": evenly(amo, counts["amorphous"])}
    return out, dict(liquid_above=liquid_above, amorphous_below=amorphous_below)


@dataclass
class RampSystem:
    """One ramp of ``lammps_inputs/`` and how to train a model on its snapshots.

    ``label`` is the system's labelling function, called with the snapshots by stage, the
    counts per class, ``t_melt`` and the keyword arguments ``windows``.  ``model`` is the
    shipped model's name (:func:`insitu.resources.model_path`); ``descriptor`` the
    Neighbors Map parameters; ``augment`` = {class: (fraction of atoms, sigma in A)}: one
    noisy copy per snapshot of that class (the paper's Sec. 3.2 recipe for hot crystals).
    """

    name: str
    classes: list
    script: str
    model: str
    descriptor: dict
    atom_types: dict
    counts: dict
    label: Callable[..., tuple[dict, dict]]
    windows: dict
    class_weights: dict | None = None
    augment: dict = field(default_factory=dict)
    labelling_note: str = ""

    def label_windows(self, stages: RampSnapshots, counts: dict,
                      t_melt: float | None) -> tuple[dict, dict]:
        """This system's windows on the snapshots by stage: (labelled, info)."""
        return self.label(stages, counts, t_melt, **self.windows)

    def label_snapshots(self, snapshots: Iterable[Snapshot], t_melt: float | None = None,
                        counts: dict | None = None, hold_skip: float = 0.2) -> dict:
        """:func:`insitu.training.autolabel.label_snapshots` with this system."""
        return label_snapshots(snapshots, self, t_melt=t_melt, counts=counts,
                               hold_skip=hold_skip)


_NI_NOTE = (
    "fcc window departs from the paper's \"below 2/3 T_m\": it is an energy window. "
    "A straight crystal line PE_s(T) is fitted to the heating below 2/3 T_m (T_m = "
    "the PE jump of this heating); fcc snapshots are the heating snapshots from the "
    "cold end up to the first one that is either within 100 K of the PE-jump onset "
    "or whose PE (running mean over 3 snapshots) lies more than 10 % of the melting "
    "jump above the crystal line; the 10 fcc snapshots are drawn evenly over that "
    "whole window. Why: the quick ramp superheats the crystal (PE on the crystal "
    "line up to ~1800-1900 K, jump at ~2200 K set-point), and a model that saw fcc "
    "only below 2/3 T_m (~1480 K) called the hot crystal liquid ~150 K before the "
    "PE jump. This is still a whole-snapshot label from a high-confidence window of "
    "temperature and energy; no atom is annotated. Liquid and amorphous windows are "
    "the paper's.")

#: The paper's systems, their high-confidence windows (Sec. 3.3.2 and 3.4.2) and snapshot
#: counts (Ni 10 fcc, 9 liquid, 5 amorphous; Cu-Zr 16 liquid, 17 amorphous).
RAMP_SYSTEMS: dict[str, RampSystem] = {s.name: s for s in (
    RampSystem(
        name="ni", classes=["fcc", "liquid", "amorphous"], script="ni_melt_quench.lmp",
        model="ni-fcc-liquid-amorphous",
        descriptor=dict(cutoff=5.2, n_grid=32, gamma=2.0, beta=3.0, channel_weights=None),
        atom_types={1: "Ni"}, counts={"fcc": 10, "liquid": 9, "amorphous": 5},
        label=label_fcc_melt_quench,
        windows=dict(fcc_fit_fraction_of_tm=2.0 / 3.0, fcc_margin_k=100.0,
                     fcc_max_residual=0.10, fcc_smooth=3, liquid_quench_t=1600.0,
                     liquid_quench_dt=100.0, amorphous_below=600.0),
        class_weights={"fcc": 1.0, "liquid": 1.0, "amorphous": 2.0},
        # Sec. 3.2's augmentation for hot crystals, applied to the crystal class only (the
        # paper's Ni model has none; without it the model trained below 2/3 T_m calls part
        # of the superheated fcc liquid): one extra copy of each fcc snapshot with Gaussian
        # noise N(0, 0.05 A) on 33 % of its atoms.  Liquid and glass are left untouched.
        augment={"fcc": (0.33, 0.05)}, labelling_note=_NI_NOTE),
    RampSystem(
        name="cuzr", classes=["liquid", "amorphous"], script="cuzr_quench.lmp",
        model="cuzr-liquid-amorphous",
        descriptor=dict(cutoff=6.0, n_grid=32, gamma=2.0, beta=3.0,
                        channel_weights=[{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}]),
        atom_types={1: "Cu", 2: "Zr"}, counts={"liquid": 16, "amorphous": 17},
        label=label_glass_quench, windows=dict(liquid_above=1100.0, amorphous_below=450.0)),
)}


def get_ramp_system(name: str) -> RampSystem:
    """The registered system ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return RAMP_SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown ramp system {name!r}; known: {sorted(RAMP_SYSTEMS)}"
                         ) from None
