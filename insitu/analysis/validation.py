"""Validation of a ramp's learned fractions against its energy (Neighbors Map paper, Figs. 5
and 7), and the report of it:

- heating: the temperature where the crystal fraction (e.g. ``fcc``) crosses 50 % against
  the temperature of the potential-energy jump (melting, a first-order step in PE(T));
- quench: the temperature where the ``amorphous`` fraction crosses 50 % against the
  temperature where the slope of PE(T) changes (the glass transition), and the largest
  excess of the crystal fraction during the quench over its final value (a phantom crystal
  in the supercooled liquid: goal <= 0.10);
- provenance: the run's velocity seed (``extra/run_seed``) against the seeds the model was
  trained and validated on (its metadata): a run on a training seed does not validate.

The temperature axis is the thermostat set-point (``extra/t_target`` in the log) when the
run logged it, else the measured temperature smoothed over a few rows.  The energy reference
is the potential energy per atom averaged over every step of each analysis interval
(``extra/pe_mean``, with the set-point averaged the same way, ``extra/t_target_mean``) when
the run logged them (the shipped Ni and Cu-Zr inputs do, with a ``fix ave/time``),
else the energy at the analysis step itself; the report names which.  The stage of each row
(1 heating, 2 hold, 3 quench) comes from ``extra/stage`` when logged, else it is inferred
from the temperature history.  ``insitu validate`` (:mod:`insitu.cli.validate`) is the
command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from insitu.analysis.ramp_numerics import (
    HEATING,
    QUENCH,
    crossing_temperature,
    log_stages,
    pe_jump_temperature,
    slope_change_temperature,
    temperature_axis,
)
from insitu.io.phase_log import LogData, read_log

__all__ = ["HEATING_GOAL_K", "QUENCH_GOAL_K", "QUENCH_EXCESS_GOAL", "CRYSTAL_CLASSES",
           "ENERGY_SOURCES", "energy_reference", "energy_units", "validate_log",
           "run_provenance", "goals_met", "format_report", "jsonable"]

#: goals from the issue: |T(fraction 50 %) - T(energy)| on heating and on the quench
HEATING_GOAL_K = 50.0
QUENCH_GOAL_K = 150.0
#: goal: the crystal fraction during the quench at most this much above its final value
QUENCH_EXCESS_GOAL = 0.10

CRYSTAL_CLASSES = ("fcc", "hcp", "bcc", "cubic_diamond")


def _crystal_class(log: LogData, rows=None):
    """The crystal class the ramp starts in: of the model's crystal classes, the one with
    the largest mean fraction over the first rows (e.g. hcp for a general crystal model
    on the hcp ramp)."""
    crystals = [c for c in log.classes if c in CRYSTAL_CLASSES]
    if not crystals:
        return None
    rows = np.arange(len(log.temperature)) if rows is None else np.nonzero(rows)[0]
    head = rows[: max(3, len(rows) // 10)]
    return max(crystals, key=lambda c: float(np.mean(log.fractions[c][head])))


ENERGY_SOURCES = {
    "interval": "potential energy per atom averaged over each analysis interval (extra/pe_mean)",
    "step": "potential energy at each analysis step"}
"""What :func:`energy_reference` may return, as the report names it."""


def energy_reference(log: LogData, t_axis: np.ndarray, temperature: str = "auto",
                     energy: str = "auto") -> tuple[np.ndarray, np.ndarray, str]:
    """(T, PE per atom, source) of the energy curve a ramp is validated against, source a
    key of :data:`ENERGY_SOURCES`.

    ``energy='interval'`` (or ``'auto'`` when the log has ``extra/pe_mean``): the potential
    energy per atom averaged over every step of each analysis interval, against the
    thermostat set-point averaged over the same steps (``extra/t_target_mean``; with a
    measured temperature axis, ``t_axis``).  On a small NPT system the energy at one step
    scatters by several meV/atom from row to row, which moves a two-slope fit's breakpoint
    by 100 K and more; the interval mean removes the fast part of that scatter (not the
    barostat's slower swings).  ``energy='step'``: the energy logged at the analysis step
    (LAMMPS's ``pe`` there), in eV/atom when the log knows its atom count.
    """
    if energy not in ("auto", "interval", "step"):
        raise ValueError(f"energy must be auto, interval or step, not {energy!r}")
    if energy == "interval" and "pe_mean" not in log.extra:
        raise KeyError("the log has no extra/pe_mean (interval-averaged potential energy per "
                       "atom): log it with a fix ave/time, see lammps_inputs/ni_melt_quench.lmp")
    if energy == "step" or "pe_mean" not in log.extra:
        return t_axis, log.pe_per_atom(), "step"
    t = t_axis
    if temperature != "measured" and "t_target_mean" in log.extra:
        t = np.asarray(log.extra["t_target_mean"], float)
    return t, np.asarray(log.extra["pe_mean"], float), "interval"


def energy_units(log: LogData, source: str) -> str:
    """Units of :func:`energy_reference`'s energy: the interval mean is per atom; the step
    energy is per atom when the log knows its atom count, else the total."""
    return "eV/atom" if (source == "interval" or log.n_atoms) else "eV"


def validate_log(log: LogData | str | Path, temperature: str = "auto",
                 quench_t_min: float | None = None, quench_t_max: float | None = None,
                 heating_goal: float = HEATING_GOAL_K, quench_goal: float = QUENCH_GOAL_K,
                 energy: str = "auto") -> dict:
    """Compare the learned fractions with the energy on each stage of a ramp log.

    heating (if the log has one and the model a crystal class): T where the crystal
    fraction crosses 50 % vs the PE-jump temperature (goal: within ``heating_goal`` K);
    also the CNA reference's crossing (``extra/cna_<crystal>``) when logged.
    quench (if the log has one and the model an ``amorphous`` class): T where the amorphous
    fraction crosses 50 % vs the PE(T) slope change (goal: within ``quench_goal`` K), the
    slope fit restricted to [quench_t_min, quench_t_max] (default: up to 90 % of the top
    temperature of the quench, which leaves out the thermostat's lag at the start).
    The energy curve is :func:`energy_reference`'s (``energy``).
    """
    if not isinstance(log, LogData):
        log = read_log(log)
    t_all, t_label = temperature_axis(log, temperature)
    t_pe, pe, source = energy_reference(log, t_all, temperature, energy)
    stages = log_stages(log)
    report = {"temperature_axis": t_label, "classes": log.classes,
              "energy": ENERGY_SOURCES[source],
              "pe_units": energy_units(log, source),
              "n_rows": int(len(t_all))}
    heat = stages == HEATING
    crystal = _crystal_class(log, heat if heat.any() else None)
    if heat.sum() >= 20 and crystal:
        t, e = t_all[heat], pe[heat]
        jump = pe_jump_temperature(t_pe[heat], e)
        t50 = crossing_temperature(t, log.fractions[crystal][heat], 0.5)
        h = {"crystal_class": crystal, "t_fraction_50": t50, "t_pe_jump": jump["t_jump"],
             "delta_pe": jump["delta_pe"], "difference": t50 - jump["t_jump"],
             "goal": heating_goal, "passed": bool(abs(t50 - jump["t_jump"]) <= heating_goal)}
        cna = log.extra.get(f"cna_{crystal}")
        if cna is not None:
            h["t_cna_50"] = crossing_temperature(t, cna[heat], 0.5)
            h["t_cna_50_of_start"] = crossing_temperature(t, cna[heat] / max(cna[heat][:5].mean(),
                                                                             1e-9), 0.5)
        report["heating"] = h

    quench = stages == QUENCH
    if quench.sum() >= 20 and "amorphous" in log.classes:
        t, e, te = t_all[quench], pe[quench], t_pe[quench]
        t_max = quench_t_max if quench_t_max is not None else 0.9 * float(np.max(te))
        sc = slope_change_temperature(te, e, t_min=quench_t_min, t_max=t_max)
        t50 = crossing_temperature(t, log.fractions["amorphous"][quench], 0.5)
        q = {"t_fraction_50": t50, "t_slope_change": sc["t_break"],
             "slope_liquid": sc["slope_high"], "slope_glass": sc["slope_low"],
             "difference": t50 - sc["t_break"], "goal": quench_goal,
             "passed": bool(abs(t50 - sc["t_break"]) <= quench_goal),
             "fit_range": sc["t_range"], "hinge_coef": sc["coef"]}
        if "liquid" in log.fractions:
            q["t_liquid_equals_amorphous"] = crossing_temperature(
                t, log.fractions["amorphous"][quench] - log.fractions["liquid"][quench], 0.0)
        if crystal and crystal in log.fractions:
            f = log.fractions[crystal][quench]
            final = float(np.mean(f[-5:]))
            k = int(np.argmax(f))
            q[f"final_{crystal}_fraction"] = final
            q["excess"] = {"crystal_class": crystal, "max_excess": float(f[k] - final),
                           "at_t": float(t[k]), "goal": QUENCH_EXCESS_GOAL,
                           "passed": bool(f[k] - final <= QUENCH_EXCESS_GOAL)}
        report["quench"] = q
    prov = run_provenance(log)
    if prov:
        report["provenance"] = prov
    return report


def run_provenance(log: LogData) -> dict:
    """The run's velocity seed (``extra/run_seed``) and the seeds the log's model
    (``model_path`` attribute) was trained and validated on (its ``training`` metadata):
    {run_seed, training_seeds, validation_seeds, seed_is_training}; {} when the log has no
    seed, the model file is gone or its metadata names no seeds."""
    seeds = log.extra.get("run_seed")
    path = log.attrs.get("model_path")
    if seeds is None or not len(seeds) or not path or not Path(path).is_file():
        return {}
    from insitu.model import Classifier

    training = Classifier.load(path, mc_passes=1).metadata.get("training") or {}
    if "training_seeds" not in training:
        return {}
    seed = int(round(float(seeds[-1])))
    return {"run_seed": seed, "training_seeds": training["training_seeds"],
            "validation_seeds": training.get("validation_seeds", []),
            "seed_is_training": seed in training["training_seeds"]}


def goals_met(report: dict) -> bool:
    """True when every goal that applies to the report (heating, quench, the quench's
    crystal excess) is met and the run is not one of the model's training seeds."""
    parts = [report[p]["passed"] for p in ("heating", "quench") if p in report]
    if "excess" in report.get("quench", {}):
        parts.append(report["quench"]["excess"]["passed"])
    return all(parts) and not report.get("provenance", {}).get("seed_is_training", False)


def format_report(report: dict, name: str = "") -> str:
    """Human-readable lines of a :func:`validate_log` report (PASS / FAIL per goal)."""
    lines = [f"ramp validation {name}".rstrip(),
             f"  temperature axis: {report['temperature_axis']}, {report['n_rows']} rows, "
             f"classes {report['classes']}"]
    if "energy" in report:
        lines.append(f"  energy: {report['energy']}")
    h = report.get("heating")
    if h:
        c = h["crystal_class"]
        lines += [f"  heating: {c} fraction crosses 50 % at {h['t_fraction_50']:.0f} K;"
                  f" PE jump at {h['t_pe_jump']:.0f} K"
                  f" (step {h['delta_pe']:.3f} {report['pe_units']})",
                  f"           difference {h['difference']:+.0f} K, goal within "
                  f"{h['goal']:.0f} K: {'PASS' if h['passed'] else 'FAIL'}"]
        if "t_cna_50" in h:
            lines.append(f"           CNA reference: {c} fraction crosses 50 % at "
                         f"{h['t_cna_50']:.0f} K")
    q = report.get("quench")
    if q:
        lines += [f"  quench:  amorphous fraction crosses 50 % at {q['t_fraction_50']:.0f} K;"
                  f" PE(T) slope changes at {q['t_slope_change']:.0f} K",
                  f"           difference {q['difference']:+.0f} K, goal within "
                  f"{q['goal']:.0f} K: {'PASS' if q['passed'] else 'FAIL'}"]
        if "t_liquid_equals_amorphous" in q:
            lines.append(f"           liquid = amorphous at {q['t_liquid_equals_amorphous']:.0f} K")
        for k, v in q.items():
            if k.startswith("final_"):
                lines.append(f"           {k.replace('_', ' ')} at the cold end: {v:.3f}")
        x = q.get("excess")
        if x:
            lines.append(f"           {x['crystal_class']} fraction during the quench minus its "
                         f"final value (max): {x['max_excess']:+.3f} at {x['at_t']:.0f} K, goal "
                         f"<= {x['goal']:.2f}: {'PASS' if x['passed'] else 'FAIL'}")
    p = report.get("provenance")
    if p:
        lines.append(f"  run velocity seed {p['run_seed']}; model trained on seeds "
                     f"{p['training_seeds']}, validated on {p['validation_seeds']}: "
                     + ("FAIL, a training trajectory does not validate"
                        if p["seed_is_training"] else "not a training seed"))
    if not h and not q:
        lines.append("  nothing to validate (no heating with a crystal class, no quench with "
                     "an amorphous class)")
    return "\n".join(lines)


def jsonable(obj: object) -> object:
    """``obj`` with non-finite floats replaced by None (for ``json.dumps``)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
