"""The ramp systems of the papers, as a registry: each :class:`RampSystem` names its LAMMPS
input, classes, descriptor and training settings, and carries its own labelling function
(the paper's high-confidence windows, Neighbors Map paper Sec. 3.3.2 for Ni and 3.4.2 for
Cu-Zr).  Adding a system is adding one entry to :data:`RAMP_SYSTEMS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from insitu.analysis.ramp_numerics import (
    linear_fit,
    pe_jump_temperature,
    slope_change_temperature,
)
from insitu.training.autolabel import (
    RampSnapshots,
    Snapshot,
    evenly,
    label_snapshots,
    msd_rates,
)

__all__ = ["RampSystem", "RAMP_SYSTEMS", "get_ramp_system", "label_fcc_melt_quench",
           "label_glass_quench"]


def _flag(values: np.ndarray, test) -> np.ndarray:
    """``test(values)`` where the evidence was logged; True (no objection) where it is NaN."""
    values = np.asarray(values, float)
    out = np.ones(len(values), bool)
    ok = np.isfinite(values)
    out[ok] = test(values[ok])
    return out


def label_fcc_melt_quench(stages: RampSnapshots, counts: dict, t_melt: float | None, *,
                          fcc_margin_k: float, solid_msd_rate: float, liquid_msd_rate: float,
                          liquid_margin_k: float, glass_margin_k: float,
                          liquid_from_hold: int, crystallised_cna: float,
                          crystallised_pe: float, quench_fit_top: float = 0.9
                          ) -> tuple[dict, dict]:
    """Labels of an fcc metal heated through melting, held and quenched to a glass (Ni),
    from evidence in the run itself (Sec. 3.2 / 3.3.2 of the Neighbors Map paper: energy,
    mean-squared displacement, a traditional method in its reliable range), never from the
    temperature alone:

    fcc       superheated crystal: heating snapshots cooler than the PE-jump onset (the
              start of the melting step, :func:`pe_jump_temperature`, or ``t_melt``) minus
              ``fcc_margin_k``, and not diffusive (MSD growth < ``solid_msd_rate`` A^2/ps);
    liquid    ``liquid_from_hold`` snapshots of the hold and the rest from the supercooled
              liquid of the quench: hotter than the PE(T) slope change T_g
              (:func:`slope_change_temperature`) + ``liquid_margin_k``, diffusive (MSD
              growth > ``liquid_msd_rate`` A^2/ps), not crystallised (CNA fcc fraction <=
              ``crystallised_cna``, CNA being reliable in a liquid);
    amorphous glass: quench snapshots cooler than T_g - ``glass_margin_k``, not diffusive,
              not crystallised (CNA fcc <= ``crystallised_cna``, and PE above the heating's
              crystal line by more than ``crystallised_pe`` x the melting jump).
    Everything else (the melting step, the glass transition, contradicting evidence) is
    dropped; ``info['dropped']`` counts the drops by reason.  Each class is drawn evenly
    over its window (``counts``).  Without an msd / CNA column a criterion is not applied.
    """
    heat, hold, quench = stages
    t_h = np.array([s.target for s in heat], float)
    e_h = np.array([s.pe_per_atom for s in heat], float)
    jump = pe_jump_temperature(t_h, e_h, smooth=3)
    onset = min(float(jump["lo"]), float(t_melt if t_melt is not None else jump["t_jump"]))
    fcc_below = onset - fcc_margin_k
    solid_h = _flag(msd_rates(heat), lambda r: r < solid_msd_rate)
    fcc = [s for s, t, ok in zip(heat, t_h, solid_h) if t < fcc_below and ok]
    dropped = {"heating: melting step or liquid": int(np.sum(t_h >= fcc_below)),
               "heating: diffusive below the jump": int(np.sum((t_h < fcc_below) & ~solid_h))}

    t_q = np.array([s.target for s in quench], float)
    e_q = np.array([s.pe_per_atom for s in quench], float)
    sc = slope_change_temperature(t_q, e_q, t_max=quench_fit_top * float(np.max(t_q)))
    t_g = float(sc["t_break"])
    rate_q = msd_rates(quench)
    not_cryst = _flag([s.cna_fcc for s in quench], lambda c: c <= crystallised_cna)
    fit = t_h < 2.0 / 3.0 * onset                    # crystal line of this heating
    if fit.sum() >= 2 and np.isfinite(jump["delta_pe"]) and jump["delta_pe"] > 0:
        ks, bs = linear_fit(t_h[fit], e_h[fit])
        not_cryst &= (e_q - (ks * t_q + bs)) > crystallised_pe * jump["delta_pe"]
    diffusive = _flag(rate_q, lambda r: r > liquid_msd_rate)
    frozen = _flag(rate_q, lambda r: r < solid_msd_rate)
    hot, cold = t_q > t_g + liquid_margin_k, t_q < t_g - glass_margin_k
    liq_q = [s for s, ok in zip(quench, hot & diffusive & not_cryst) if ok]
    amorphous = [s for s, ok in zip(quench, cold & frozen & not_cryst) if ok]
    dropped.update({
        "quench: glass transition": int(np.sum(~hot & ~cold)),
        "quench: crystallised (CNA or PE)": int(np.sum((hot | cold) & ~not_cryst)),
        "quench: MSD contradicts": int(np.sum(hot & not_cryst & ~diffusive)
                                       + np.sum(cold & not_cryst & ~frozen))})
    n_hold = min(liquid_from_hold, len(hold), counts["liquid"])
    liquid = evenly(hold, n_hold) + evenly(liq_q, counts["liquid"] - n_hold)
    if not liq_q:
        liquid = []                                  # no supercooled liquid: refused
    out = {"fcc": evenly(fcc, counts["fcc"]), "liquid": liquid,
           "amorphous": evenly(amorphous, counts["amorphous"])}
    info = dict(t_pe_jump=float(jump["t_jump"]), pe_jump_onset=onset,
                pe_jump_eV_per_atom=float(jump["delta_pe"]), fcc_below=fcc_below,
                t_slope_change=t_g, liquid_above=t_g + liquid_margin_k,
                amorphous_below=t_g - glass_margin_k, dropped=dropped,
                msd_logged=bool(np.isfinite(rate_q).any()),
                fcc_window=[float(min(s.target for s in fcc)), float(max(s.target for s in fcc))]
                if fcc else None,
                supercooled_liquid_window=[float(min(s.target for s in liq_q)),
                                           float(max(s.target for s in liq_q))] if liq_q else None)
    return out, info


def label_glass_quench(stages: RampSnapshots, counts: dict, t_melt: float | None, *,
                       solid_msd_rate: float, liquid_msd_rate: float, liquid_margin_k: float,
                       glass_margin_k: float, liquid_from_hold: int, crystallised_cna: float,
                       quench_fit_top: float = 0.9) -> tuple[dict, dict]:
    """Labels of a glass former held liquid and quenched (Cu-Zr) from evidence in the run
    itself, never from the temperature alone (``t_melt`` is not used):

    liquid    ``liquid_from_hold`` snapshots of the hold and the rest from the supercooled
              liquid of the quench: hotter than the PE(T) slope change T_g
              (:func:`slope_change_temperature`) + ``liquid_margin_k`` and diffusive (MSD
              growth > ``liquid_msd_rate`` A^2/ps);
    amorphous glass: quench snapshots cooler than T_g - ``glass_margin_k`` and not
              diffusive (MSD growth < ``solid_msd_rate``);
    and neither when CNA finds more than ``crystallised_cna`` of the atoms fcc (a glass
    former may still crystallise).  The glass transition and the snapshots whose evidence
    contradicts their side of T_g are dropped (``info['dropped']``).  Without an msd / CNA
    column a criterion is not applied."""
    hold, quench = stages.hold, stages.quench
    t_q = np.array([s.target for s in quench], float)
    e_q = np.array([s.pe_per_atom for s in quench], float)
    sc = slope_change_temperature(t_q, e_q, t_max=quench_fit_top * float(np.max(t_q)))
    t_g = float(sc["t_break"])
    rate_q = msd_rates(quench)
    diffusive = _flag(rate_q, lambda r: r > liquid_msd_rate)
    frozen = _flag(rate_q, lambda r: r < solid_msd_rate)
    not_cryst = _flag([s.cna_fcc for s in quench], lambda c: c <= crystallised_cna)
    hot, cold = t_q > t_g + liquid_margin_k, t_q < t_g - glass_margin_k
    liq_q = [s for s, ok in zip(quench, hot & diffusive & not_cryst) if ok]
    amorphous = [s for s, ok in zip(quench, cold & frozen & not_cryst) if ok]
    dropped = {
        "quench: glass transition": int(np.sum(~hot & ~cold)),
        "quench: crystallised (CNA)": int(np.sum((hot | cold) & ~not_cryst)),
        "quench: MSD contradicts": int(np.sum(hot & not_cryst & ~diffusive)
                                       + np.sum(cold & not_cryst & ~frozen))}
    n_hold = min(liquid_from_hold, len(hold), counts["liquid"])
    liquid = evenly(hold, n_hold) + evenly(liq_q, counts["liquid"] - n_hold)
    out = {"liquid": liquid, "amorphous": evenly(amorphous, counts["amorphous"])}
    info = dict(t_slope_change=t_g, liquid_above=t_g + liquid_margin_k,
                amorphous_below=t_g - glass_margin_k, dropped=dropped,
                msd_logged=bool(np.isfinite(rate_q).any()),
                supercooled_liquid_window=[float(min(s.target for s in liq_q)),
                                           float(max(s.target for s in liq_q))] if liq_q else None)
    return out, info


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
    "Labels from evidence in each run, not from temperature windows: the paper's windows "
    "(fcc below 2/3 T_m, liquid at 1600 +- 100 K) left the superheated crystal and the "
    "supercooled liquid unseen, and the energy window that replaced them (fcc up to the "
    "PE residual) made the model call up to 40 % of the supercooled liquid fcc in the "
    "quench. Here the supercooled liquid of the quench (diffusive, above the PE(T) slope "
    "change) is liquid, the superheated crystal up to the PE jump (not diffusive) is fcc, "
    "the glass below the slope change (not diffusive, not crystallised) is amorphous, and "
    "the snapshots at the jumps are dropped. Training and validation snapshots come from "
    "different runs (velocity seeds).")

_CUZR_NOTE = (
    "Labels from evidence in each run, not from temperature windows: the paper's windows "
    "(liquid above 1100 K, amorphous below 450 K, Sec. 3.4.2) are replaced by the run's own "
    "PE(T) slope change T_g and its mean-squared displacement: the diffusive supercooled "
    "liquid above T_g + margin is liquid, the non-diffusive glass below T_g - margin is "
    "amorphous, the glass transition between them is dropped. Training and validation "
    "snapshots come from different runs (velocity seeds); the input's default seed is "
    "neither.")

#: The paper's systems, their labelling rules (from each run's evidence) and snapshot
#: counts (Ni 10 fcc, 9 liquid, 5 amorphous; Cu-Zr 16 liquid, 17 amorphous).
RAMP_SYSTEMS: dict[str, RampSystem] = {s.name: s for s in (
    RampSystem(
        name="ni", classes=["fcc", "liquid", "amorphous"], script="ni_melt_quench.lmp",
        model="ni-fcc-liquid-amorphous",
        descriptor=dict(cutoff=5.2, n_grid=32, gamma=2.0, beta=3.0, channel_weights=None),
        atom_types={1: "Ni"}, counts={"fcc": 10, "liquid": 18, "amorphous": 6},
        label=label_fcc_melt_quench,
        windows=dict(fcc_margin_k=40.0, solid_msd_rate=0.05, liquid_msd_rate=0.15,
                     liquid_margin_k=150.0, glass_margin_k=150.0, liquid_from_hold=3,
                     crystallised_cna=0.10, crystallised_pe=0.3),
        class_weights={"fcc": 1.0, "liquid": 1.5, "amorphous": 2.0},
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
        label=label_glass_quench,
        windows=dict(solid_msd_rate=0.05, liquid_msd_rate=0.15, liquid_margin_k=150.0,
                     glass_margin_k=150.0, liquid_from_hold=3, crystallised_cna=0.10),
        labelling_note=_CUZR_NOTE),
)}


def get_ramp_system(name: str) -> RampSystem:
    """The registered system ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return RAMP_SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown ramp system {name!r}; known: {sorted(RAMP_SYSTEMS)}"
                         ) from None
