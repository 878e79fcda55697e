"""Labels of near-transition snapshots by evidence from the run itself (Neighbors Map paper,
Sec. 3.2: energy, mobility and a traditional method in its reliable range), never by the
temperature alone.

Per snapshot of a run (:mod:`insitu.training.transition_runs`) the evidence is

* the potential energy per atom against the temperature: on heating, the melting jump is
  the largest rise of the PE between snapshots; its onset is where the PE leaves the
  crystal's own curve (quadratic in T, fitted below 0.85 of the jump temperature: the
  anharmonic rise is not melting) by 30 % of the latent heat (:data:`ONSET_FRACTION`);
  on a quench,
  crystallisation is a drop below the line of the preceding 8 snapshots by more than
  25 % of the latent heat, on 3 consecutive snapshots;
* the mean-squared displacement over the last ``window`` snapshots (COM removed,
  fractional coordinates times the current cell, so that the barostat's dilation is not
  counted): a crystal vibrates (MSD of a few 0.1 A^2), a liquid diffuses
  (:data:`DIFFUSIVE_MSD_A2`);
* LAMMPS ``compute cna/atom`` where it is reliable (crystals below 0.8 T_m): a crystal
  snapshot whose CNA finds more atoms of another crystal class than of its own has
  transformed (e.g. hcp -> bcc) and is dropped; on a quench, more than 15 % of the atoms
  crystalline by CNA means crystallisation started.

Snapshots within ``margin`` snapshots of the melting jump or of crystallisation, crystals
that diffuse, liquids that do not (a glass: the models have no amorphous class) and
anything after crystallisation are dropped (label ``None``, with the reason).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DIFFUSIVE_MSD_A2", "ONSET_FRACTION", "MIN_LATENT_EV", "windowed_msd",
           "label_heating", "label_quench", "hysteresis_melting_point"]

DIFFUSIVE_MSD_A2 = 0.8
"""MSD (A^2) over the window (2 ps by default) above which a snapshot is diffusive: a
crystal at its superheating limit stays below ~0.4 A^2, a metallic liquid near T_m moves
several A^2 in 2 ps."""


ONSET_FRACTION = 0.3
"""Onset of melting on heating: the PE above the crystal's curve by this fraction of the
latent heat. The PE of snapshots 1 ps apart scatters by ~0.1 of it (the temperature of
~500 atoms fluctuates); 2 snapshots before the onset are dropped besides."""

MIN_LATENT_EV = 0.05
"""Floor of the latent heat (eV/atom) in the crystallisation test: a heating run that ends
while melting measures only part of it (metals and Si: 0.06-0.35 eV/atom)."""


def windowed_msd(frames, window: int = 2) -> np.ndarray:
    """MSD (A^2) of each snapshot against the snapshot ``window`` earlier (NaN for the first
    ``window``); positions must be unwrapped, the ids in the same order in every frame."""
    out = np.full(len(frames), np.nan)
    fracs = []
    for fr in frames:
        f = fr.positions @ np.linalg.inv(fr.cell)
        fracs.append(f - f.mean(axis=0))
    for i in range(window, len(frames)):
        lengths = 0.5 * (np.linalg.norm(frames[i].cell, axis=1)
                         + np.linalg.norm(frames[i - window].cell, axis=1))
        d = (fracs[i] - fracs[i - window]) * lengths
        out[i] = float((d ** 2).sum(axis=1).mean())
    return out


def _line_residual(temp, pe, fit_mask, degree: int = 1):
    if fit_mask.sum() < degree + 2:
        fit_mask = np.ones(len(temp), bool)
    p = np.polyfit(temp[fit_mask], pe[fit_mask], degree)
    return pe - np.polyval(p, temp)


def label_heating(temp, pe, msd, structure: str, cna_own, cna_other, t_melt: float,
                  margin: int = 2) -> tuple[list, dict]:
    """Labels of a heating run's snapshots: ``structure`` before the melting jump (minus
    ``margin``), ``"liquid"`` after it (plus ``margin``) and diffusive, else None.

    ``cna_own`` / ``cna_other``: per snapshot, the fraction of atoms CNA calls the
    structure / the most common other crystal class (NaN where CNA has no such class).
    Returns (labels, info) with the jump's temperatures and the latent heat (eV/atom)."""
    temp, pe, msd = (np.asarray(a, dtype=np.float64) for a in (temp, pe, msd))
    n = len(temp)
    dpe = np.diff(pe)
    jump_i = int(np.argmax(dpe - np.median(dpe))) + 1       # first snapshot after the rise
    t_jump = temp[jump_i - 1]
    res = _line_residual(temp, pe, (temp < 0.85 * t_jump) & (temp > 0.05 * t_jump), degree=2)
    after = res[jump_i:jump_i + 4]
    latent = float(np.max(after)) if len(after) else float(dpe.max())
    onset = next(i for i in range(n) if res[i] > ONSET_FRACTION * latent or i == jump_i)
    done = next((i for i in range(jump_i, n) if res[i] > 0.85 * latent), jump_i)
    labels, reasons = [], []
    for i in range(n):
        lab, why = None, ""
        if i < onset - margin:
            if np.isfinite(msd[i]) and msd[i] > DIFFUSIVE_MSD_A2:
                why = "crystal branch but diffusive"
            elif np.isfinite(cna_other[i]) and np.isfinite(cna_own[i]) \
                    and cna_other[i] > cna_own[i] and temp[i] < 0.8 * t_melt:
                why = "CNA: transformed to another crystal"
            else:
                lab = structure
        elif i > done + margin:
            if np.isfinite(msd[i]) and msd[i] > DIFFUSIVE_MSD_A2:
                lab = "liquid"
            else:
                why = "liquid branch but not diffusive"
        else:
            why = "melting jump"
        labels.append(lab)
        reasons.append(why)
    info = dict(jump_index=jump_i, t_superheat_limit=float(temp[max(onset - 1, 0)]),
                t_jump=float(t_jump), latent_ev=latent, onset_index=int(onset),
                done_index=int(done), reasons=reasons)
    return labels, info


def label_quench(temp, pe, msd, cna_crystalline, t_melt: float, latent_ev: float,
                 margin: int = 2, lookback: int = 8, sustain: int = 3) -> tuple[list, dict]:
    """Labels of a quench's snapshots: ``"liquid"`` while diffusive and before
    crystallisation (minus ``margin``), else None. Crystallisation: the PE falls below the
    line of the ``lookback`` preceding snapshots by more than 25 % of ``latent_ev`` (the
    latent heat of the heating run, at least :data:`MIN_LATENT_EV`) on ``sustain``
    consecutive snapshots (a fluctuation does not last), or more than 15 %
    of the atoms are crystalline by CNA (``cna_crystalline``, NaN where CNA has no class)."""
    temp, pe, msd = (np.asarray(a, dtype=np.float64) for a in (temp, pe, msd))
    cna_c = np.asarray(cna_crystalline, dtype=np.float64)
    n = len(temp)
    thr = 0.25 * max(abs(latent_ev), MIN_LATENT_EV)
    sustained = np.zeros(n, bool)
    for i in range(lookback, n - sustain + 1):  # against the line of the snapshots before
        p = np.polyfit(temp[i - lookback:i], pe[i - lookback:i], 1)
        sustained[i] = bool(np.all(pe[i:i + sustain] - np.polyval(p, temp[i:i + sustain])
                                   < -thr))
    crystal = sustained | (np.nan_to_num(cna_c) > 0.15)
    start = int(np.argmax(crystal)) if crystal.any() else n
    labels, reasons = [], []
    for i in range(n):
        lab, why = None, ""
        if start < n and i >= start - margin:
            why = "crystallising or crystallised"
        elif np.isfinite(msd[i]) and msd[i] > DIFFUSIVE_MSD_A2:
            lab = "liquid"
        elif np.isfinite(msd[i]):
            why = "not diffusive (glass)"
        else:
            why = "no MSD yet"
        labels.append(lab)
        reasons.append(why)
    info = dict(crystallisation_index=start if start < n else None,
                t_crystallisation=float(temp[start]) if start < n else None, reasons=reasons)
    return labels, info


def hysteresis_melting_point(t_plus: float, t_minus: float) -> float:
    """T_m from the superheating limit ``t_plus`` of a heating run and the crystallisation
    temperature ``t_minus`` of a quench of the same system (Luo, Strachan & Swift,
    J. Chem. Phys. 120, 11640 (2004)): T_m = T+ + T- - sqrt(T+ T-); a check of the
    literature T_m, accurate to a few % at these rates."""
    return float(t_plus + t_minus - np.sqrt(t_plus * t_minus))
