"""The papers' heating / quench ramps: reading their logs, validating the learned fractions
against the energy, and auto-labelling whole snapshots for training.

Validation (Neighbors Map paper, Figs. 5 and 7):

- heating: the temperature where the crystal fraction (``fcc``) crosses 50 % against the
  temperature of the potential-energy jump (melting, a first-order step in PE(T));
- quench: the temperature where the ``amorphous`` fraction crosses 50 % against the
  temperature where the slope of PE(T) changes (the glass transition).

The temperature axis is the thermostat set-point (``extra/t_target`` in the log) when the
run logged it, else the measured temperature smoothed over a few rows.  The stage of each row
(1 heating, 2 hold, 3 quench) comes from ``extra/stage`` when logged, else it is inferred
from the temperature history.

Command line: ``python -m insitu.ramps validate LOG.h5 [--json]`` (:func:`main_validate`) and
``python -m insitu.ramps train ni|cuzr [--run]`` (:func:`main_train`, auto-labelled training).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HEATING, HOLD, QUENCH = 1, 2, 3

#: goals from the issue: |T(fraction 50 %) - T(energy)| on heating and on the quench
HEATING_GOAL_K = 50.0
QUENCH_GOAL_K = 150.0


# ----------------------------------------------------------------------------- log reading

@dataclass
class RampLog:
    """The columns of an in-situ HDF5 log that the ramps need (all rows, equal length)."""

    step: np.ndarray
    time: np.ndarray
    temperature: np.ndarray
    potential_energy: np.ndarray
    fractions: dict
    extra: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    n_atoms: float | None = None

    @property
    def classes(self) -> list:
        return [c for c in self.fractions if c != "unknown"]

    def pe_per_atom(self) -> np.ndarray:
        return self.potential_energy / self.n_atoms if self.n_atoms else self.potential_energy

    def temperature_axis(self, which: str = "auto") -> tuple:
        """(T, label): the thermostat set-point if logged (``which='auto'|'target'``),
        else the measured temperature smoothed over 5 rows (``which='measured'``)."""
        if which in ("auto", "target") and "t_target" in self.extra:
            return np.asarray(self.extra["t_target"], float), "Thermostat temperature (K)"
        if which == "target":
            raise KeyError("the log has no extra/t_target (thermostat set-point)")
        return running_mean(self.temperature, 5), "Temperature (K, 5-row mean)"

    def stages(self) -> np.ndarray:
        if "stage" in self.extra:
            return np.rint(np.asarray(self.extra["stage"], float)).astype(int)
        return infer_stages(self.temperature)

    def select(self, mask) -> RampLog:
        mask = np.asarray(mask)
        return RampLog(self.step[mask], self.time[mask], self.temperature[mask],
                       self.potential_energy[mask],
                       {k: v[mask] for k, v in self.fractions.items()},
                       {k: v[mask] for k, v in self.extra.items()}, self.attrs, self.n_atoms)


def _attr(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.item() if isinstance(value, np.generic) else value


def read_log(path) -> RampLog:
    """Read an in-situ HDF5 log (it may still be written: rows are cut to the shortest
    column, and the file is opened without HDF5 file locking)."""
    import h5py

    try:
        f = h5py.File(path, "r", locking=False)
    except TypeError:  # h5py < 3.5
        f = h5py.File(path, "r")
    with f:
        cols = {k: np.asarray(f[k][()]) for k in
                ("step", "time", "temperature", "potential_energy") if k in f}
        fractions = {k: np.asarray(v[()], float) for k, v in f["fractions"].items()} \
            if "fractions" in f else {}
        counts = {k: np.asarray(v[()], float) for k, v in f["counts"].items()} \
            if "counts" in f else {}
        extra = {k: np.asarray(v[()], float) for k, v in f["extra"].items()} \
            if "extra" in f else {}
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if "temperature" not in cols or "potential_energy" not in cols:
        raise ValueError(f"{path}: not an in-situ log (no temperature / potential_energy)")
    n = min(len(v) for v in [*cols.values(), *fractions.values(), *extra.values()])
    cut = {k: v[:n] for k, v in cols.items()}
    classes = attrs.get("classes")
    if isinstance(classes, list):  # keep the model's class order, unknown last
        order = [c for c in classes if c in fractions] + [c for c in fractions if c not in classes]
        fractions = {c: fractions[c] for c in order}
    n_atoms = None
    if counts:
        total = sum(v[:n] for v in counts.values())
        if len(total) and np.all(total > 0):
            n_atoms = float(np.median(total))
    return RampLog(step=cut.get("step", np.arange(n)),
                   time=cut.get("time", np.arange(n, dtype=float)),
                   temperature=cut["temperature"].astype(float),
                   potential_energy=cut["potential_energy"].astype(float),
                   fractions={k: v[:n] for k, v in fractions.items()},
                   extra={k: v[:n] for k, v in extra.items()}, attrs=attrs, n_atoms=n_atoms)


# ----------------------------------------------------------------------------- numerics

def running_mean(y, window: int) -> np.ndarray:
    """Centred running mean; the window shrinks at the ends (no padding bias)."""
    y = np.asarray(y, float)
    window = int(window)
    if window <= 1 or len(y) < 2:
        return y.copy()
    half = window // 2
    c = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(len(y))
    lo = np.clip(idx - half, 0, len(y))
    hi = np.clip(idx + half + 1, 0, len(y))
    return (c[hi] - c[lo]) / (hi - lo)


def infer_stages(temperature, window: int = 9, tol: float = 0.03) -> np.ndarray:
    """Heating / hold / quench from a temperature history: rows before the smoothed
    temperature first reaches (1 - tol) of its maximum are heating, after it last leaves that
    band quench, between them the hold.  A pure quench (starts at the top) has no heating."""
    t = running_mean(temperature, window)
    if len(t) == 0:
        return np.zeros(0, int)
    top = (1.0 - tol) * t.max()
    near = np.nonzero(t >= top)[0]
    first, last = near[0], near[-1]
    stages = np.full(len(t), HOLD, int)
    stages[:first] = HEATING
    stages[last + 1:] = QUENCH
    if first == 0 and last < len(t) - 1:      # starts at the top: quench from the first row
        stages[: last + 1] = HOLD
    return stages


def crossings(x, y, level: float = 0.5) -> np.ndarray:
    """x positions (linear interpolation) where y crosses ``level``, in row order."""
    x = np.asarray(x, float)
    d = np.asarray(y, float) - level
    out = []
    for i in range(len(d) - 1):
        if d[i] == 0.0:
            out.append(x[i])
        elif d[i] * d[i + 1] < 0.0:
            out.append(x[i] + (x[i + 1] - x[i]) * d[i] / (d[i] - d[i + 1]))
    if len(d) and d[-1] == 0.0:
        out.append(x[-1])
    return np.asarray(out, float)


def crossing_temperature(temperature, fraction, level: float = 0.5, smooth: int = 3) -> float:
    """Temperature where a (row-ordered) fraction crosses ``level``: the median of the
    crossings of its running mean (one crossing for a clean transition; noise around the
    level gives an odd number of them around the same place).  NaN if it never crosses."""
    xs = crossings(temperature, running_mean(fraction, smooth), level)
    return float(np.median(xs)) if len(xs) else float("nan")


def _linfit(x, y):
    a = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return coef  # slope, intercept


def pe_jump_temperature(temperature, pe, smooth: int = 5, margin_k: float | None = None,
                        fit_k: float | None = None) -> dict:
    """Temperature of the step in PE(T) on heating (melting).

    1. The largest PE increase between neighbouring windows of ``smooth`` rows locates the
       step roughly, and its width is where that increase stays above half its maximum.
    2. Lines fitted to the solid branch (below the step) and the liquid branch (above) give,
       row by row, the energetic liquid fraction phi = (PE - PE_s(T)) / (PE_l(T) - PE_s(T)).
    3. The jump temperature is where phi crosses 1/2, the crossing nearest the step of 1.

    Returns dict(t_jump, t_rough, delta_pe, lo, hi) (temperatures in the axis's units).
    """
    t = np.asarray(temperature, float)
    e = np.asarray(pe, float)
    n = len(t)
    if n < 4 * smooth:
        raise ValueError(f"too few rows ({n}) to locate a PE jump")
    w = smooth
    # increase of the mean PE between the window after and the window before each row,
    # minus what the local trend predicts: a step stands out from the linear slope.
    c = np.concatenate([[0.0], np.cumsum(e)])
    diff = np.full(n, -np.inf)
    for i in range(w, n - w + 1):
        diff[i] = (c[i + w] - c[i]) / w - (c[i] - c[i - w]) / w
    base = np.median(diff[np.isfinite(diff)])
    excess = diff - base
    i0 = int(np.argmax(excess))
    half = 0.5 * excess[i0]
    lo = i0
    while lo > w and excess[lo - 1] > half:
        lo -= 1
    hi = i0
    while hi < n - w and excess[hi + 1] > half:
        hi += 1
    span = abs(t[min(hi + w, n - 1)] - t[max(lo - w, 0)])
    margin = span if margin_k is None else margin_k
    fit = max(3 * span, 0.25 * abs(t.max() - t.min())) if fit_k is None else fit_k
    t_rough = t[i0]
    up = t[-1] >= t[0]
    sgn = 1.0 if up else -1.0
    below = (sgn * (t - t_rough) < -margin / 2) & (sgn * (t - t_rough) > -margin / 2 - fit)
    above = (sgn * (t - t_rough) > margin / 2) & (sgn * (t - t_rough) < margin / 2 + fit)
    if below.sum() < 3 or above.sum() < 3:
        return dict(t_jump=float(t_rough), t_rough=float(t_rough), delta_pe=float("nan"),
                    lo=float(t[lo]), hi=float(t[hi]))
    ks, bs = _linfit(t[below], e[below])
    kl, bl = _linfit(t[above], e[above])
    gap = (kl * t + bl) - (ks * t + bs)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = (e - (ks * t + bs)) / gap
    window = (sgn * (t - t_rough) > -margin / 2 - fit) & (sgn * (t - t_rough) < margin / 2 + fit)
    idx = np.nonzero(window)[0]
    xs = crossings(t[idx], running_mean(phi[idx], 3), 0.5)
    # Far from the step the two fitted branches may meet (gap -> 0, phi erratic): take the
    # crossing nearest the located step, not a statistic over all of them.
    t_jump = float(xs[np.argmin(np.abs(xs - t_rough))]) if len(xs) else float(t_rough)
    return dict(t_jump=t_jump, t_rough=float(t_rough),
                delta_pe=float((kl - ks) * t_jump + (bl - bs)), lo=float(t[lo]), hi=float(t[hi]))


def slope_change_temperature(temperature, pe, t_min: float | None = None,
                             t_max: float | None = None, n_grid: int = 400) -> dict:
    """Temperature where the slope of PE(T) changes (glass transition on a quench): the
    breakpoint of the continuous two-segment least-squares fit
    PE = a + b T + c max(T - T_b, 0), scanned over T_b.  Rows outside [t_min, t_max] are
    left out (e.g. the top of the quench where the thermostat still lags).

    Returns dict(t_break, slope_low, slope_high, rms, coef=[a, b, c], t_range) (PE units per
    K for the slopes).
    """
    t = np.asarray(temperature, float)
    e = np.asarray(pe, float)
    keep = np.isfinite(t) & np.isfinite(e)
    if t_min is not None:
        keep &= t >= t_min
    if t_max is not None:
        keep &= t <= t_max
    t, e = t[keep], e[keep]
    if len(t) < 8:
        raise ValueError(f"too few rows ({len(t)}) to fit two slopes")
    span = t.max() - t.min()
    grid = np.linspace(t.min() + 0.1 * span, t.max() - 0.1 * span, n_grid)
    best = None
    for tb in grid:
        a = np.vstack([np.ones_like(t), t, np.maximum(t - tb, 0.0)]).T
        coef, *_ = np.linalg.lstsq(a, e, rcond=None)
        sse = float(np.sum((a @ coef - e) ** 2))
        if best is None or sse < best[0]:
            best = (sse, tb, coef)
    sse, tb, coef = best
    # refine between grid points
    step = grid[1] - grid[0]
    for tb2 in np.linspace(tb - step, tb + step, 41):
        a = np.vstack([np.ones_like(t), t, np.maximum(t - tb2, 0.0)]).T
        coef2, *_ = np.linalg.lstsq(a, e, rcond=None)
        sse2 = float(np.sum((a @ coef2 - e) ** 2))
        if sse2 < sse:
            sse, tb, coef = sse2, tb2, coef2
    return dict(t_break=float(tb), slope_low=float(coef[1]), slope_high=float(coef[1] + coef[2]),
                rms=float(np.sqrt(sse / len(t))), coef=[float(c) for c in coef],
                t_range=[float(t.min()), float(t.max())])


# ----------------------------------------------------------------------------- validation

CRYSTAL_CLASSES = ("fcc", "hcp", "bcc", "cubic_diamond")


def _crystal_class(log: RampLog, rows=None):
    """The crystal class the ramp starts in: of the model's crystal classes, the one with
    the largest mean fraction over the first rows (e.g. hcp for a general crystal model
    on the hcp ramp)."""
    crystals = [c for c in log.classes if c in CRYSTAL_CLASSES]
    if not crystals:
        return None
    rows = np.arange(len(log.temperature)) if rows is None else np.nonzero(rows)[0]
    head = rows[: max(3, len(rows) // 10)]
    return max(crystals, key=lambda c: float(np.mean(log.fractions[c][head])))


def validate_log(log: RampLog | str | Path, temperature: str = "auto",
                 quench_t_min: float | None = None, quench_t_max: float | None = None,
                 heating_goal: float = HEATING_GOAL_K, quench_goal: float = QUENCH_GOAL_K
                 ) -> dict:
    """Compare the learned fractions with the energy on each stage of a ramp log.

    heating (if the log has one and the model a crystal class): T where the crystal
    fraction crosses 50 % vs the PE-jump temperature (goal: within ``heating_goal`` K);
    also the CNA reference's crossing (``extra/cna_<crystal>``) when logged.
    quench (if the log has one and the model an ``amorphous`` class): T where the amorphous
    fraction crosses 50 % vs the PE(T) slope change (goal: within ``quench_goal`` K), the
    slope fit restricted to [quench_t_min, quench_t_max] (default: up to 90 % of the top
    temperature of the quench, which leaves out the thermostat's lag at the start).
    """
    if not isinstance(log, RampLog):
        log = read_log(log)
    t_all, t_label = log.temperature_axis(temperature)
    pe = log.pe_per_atom()
    stages = log.stages()
    report = {"temperature_axis": t_label, "classes": log.classes,
              "pe_units": "eV/atom" if log.n_atoms else "eV", "n_rows": int(len(t_all))}
    heat = stages == HEATING
    crystal = _crystal_class(log, heat if heat.any() else None)
    if heat.sum() >= 20 and crystal:
        t, e = t_all[heat], pe[heat]
        jump = pe_jump_temperature(t, e)
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
        t, e = t_all[quench], pe[quench]
        t_max = quench_t_max if quench_t_max is not None else 0.9 * float(np.max(t))
        sc = slope_change_temperature(t, e, t_min=quench_t_min, t_max=t_max)
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
            q[f"final_{crystal}_fraction"] = float(np.mean(log.fractions[crystal][quench][-5:]))
        report["quench"] = q
    return report


def format_report(report: dict, name: str = "") -> str:
    lines = [f"ramp validation {name}".rstrip(),
             f"  temperature axis: {report['temperature_axis']}, {report['n_rows']} rows, "
             f"classes {report['classes']}"]
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
    if not h and not q:
        lines.append("  nothing to validate (no heating with a crystal class, no quench with "
                     "an amorphous class)")
    return "\n".join(lines)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# ----------------------------------------------------------------------------- auto-labelling

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


def read_snapshot_index(directory) -> list:
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


def _evenly(items, n):
    """Up to n items, evenly spaced over the list (first and last included)."""
    items = list(items)
    if n is None or len(items) <= n:
        return items
    idx = np.unique(np.rint(np.linspace(0, len(items) - 1, n)).astype(int))
    return [items[i] for i in idx]


#: The paper's high-confidence windows (Sec. 3.3.2 and 3.4.2) and snapshot counts.
RAMP_SYSTEMS = {
    "ni": dict(
        classes=["fcc", "liquid", "amorphous"],
        script="ni_melt_quench.lmp",
        model="models/ni-fcc-liquid-amorphous.onnx",
        descriptor=dict(cutoff=5.2, n_grid=32, gamma=2.0, beta=3.0, channel_weights=None),
        atom_types={1: "Ni"},
        counts={"fcc": 10, "liquid": 9, "amorphous": 5},
        class_weights={"fcc": 1.0, "liquid": 1.0, "amorphous": 2.0},
        # fcc window from energy (see label_snapshots): crystal line PE_s(T) fitted on the
        # heating below fcc_fit_fraction_of_tm x T_m; heating snapshots accepted up to the
        # PE-jump onset minus fcc_margin_k, as long as the PE (running mean over fcc_smooth
        # snapshots) stays within fcc_max_residual x the melting jump of the crystal line.
        fcc_fit_fraction_of_tm=2.0 / 3.0, fcc_margin_k=100.0, fcc_max_residual=0.10,
        fcc_smooth=3,
        liquid_quench_t=1600.0, liquid_quench_dt=100.0,
        amorphous_below=600.0,
        # Sec. 3.2's augmentation for hot crystals, applied to the crystal class only (the
        # paper's Ni model has none; without it the model trained below 2/3 T_m calls part
        # of the superheated fcc liquid): one extra copy of each fcc snapshot with Gaussian
        # noise N(0, 0.05 A) on 33 % of its atoms.  Liquid and glass are left untouched.
        augment={"fcc": (0.33, 0.05)},
        labelling_note=(
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
            "the paper's."),
    ),
    "cuzr": dict(
        classes=["liquid", "amorphous"],
        script="cuzr_quench.lmp",
        model="models/cuzr-liquid-amorphous.onnx",
        descriptor=dict(cutoff=6.0, n_grid=32, gamma=2.0, beta=3.0,
                        channel_weights=[{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}]),
        atom_types={1: "Cu", 2: "Zr"},
        counts={"liquid": 16, "amorphous": 17},
        class_weights=None,
        liquid_above=1100.0, amorphous_below=450.0,
        augment={},
    ),
}


def fcc_energy_window(heat, t_melt: float, jump: dict, fit_fraction: float = 2.0 / 3.0,
                      margin_k: float = 100.0, max_residual: float = 0.10,
                      smooth: int = 3) -> tuple:
    """High-confidence crystal window of a heating ramp from its energy (Ni's fcc class, see
    :func:`label_snapshots`).  ``heat``: heating snapshots by step; ``jump``: the
    :func:`pe_jump_temperature` result (``lo``: start of the step, ``delta_pe``: its height).

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
    ks, bs = _linfit(t[fit], e[fit])
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


def label_snapshots(snapshots, system: str, t_melt: float | None = None,
                    counts: dict | None = None, hold_skip: float = 0.2) -> dict:
    """Whole-snapshot labels from high-confidence windows of temperature and energy (no
    per-atom annotation), as in the paper.  Temperatures are the thermostat set-points.

    ni:   fcc       heating snapshots whose PE lies on the crystal line (an energy window,
                    not the paper's temperature window "below 2/3 T_m"):
                    1. the crystal line PE_s(T) is a straight line fitted to the heating
                       below 2/3 T_m, where T_m is the PE-jump temperature of this heating
                       (or ``t_melt``);
                    2. the window starts at the cold end of the heating and ends before the
                       first snapshot that is hotter than the PE-jump onset minus 100 K
                       (onset = the cooler of the jump's half-height start and T_m), or whose
                       residual from the crystal line, (PE - PE_s(T)) as a running mean over
                       3 snapshots, exceeds 10 % of the melting jump;
                    3. the paper's 10 fcc snapshots are drawn evenly over the whole window,
                       so the hottest accepted snapshot is always among them.
                    Why not "below 2/3 T_m": on a fast ramp the crystal superheats, so the
                    model never saw fcc between 2/3 T_m and the jump and called hot, still
                    crystalline fcc liquid ~150 K before the PE jump.  The energy says where
                    the crystal still is; the margin and the residual cap keep the window
                    clear of premelting and of the jump itself.  Without a finite jump
                    height the window falls back to below 2/3 T_m;
          liquid    the 2500 K hold (its first ``hold_skip`` left out) and the quench within
                    1600 +- 100 K;
          amorphous the quench below 600 K, and only snapshots whose energy lies above the
                    crystal line of the heating by more than 30 % of the melting jump: a
                    crystallised cold end is not labelled amorphous.
    cuzr: liquid    the 2000 K hold (first ``hold_skip`` left out) and the quench above 1100 K;
          amorphous the quench below 450 K.

    The first 5 % of the heating (at least its first snapshot, a perfect lattice) is left
    out.  Snapshots are drawn evenly over each window, up to ``counts`` per class (the paper's:
    Ni 10 fcc, 9 liquid, 5 amorphous; Cu-Zr 16 liquid, 17 amorphous).  Returns
    {class: [Snapshot, ...]} and, under the key ``'_info'``, the windows used.
    """
    cfg = RAMP_SYSTEMS[system]
    counts = dict(cfg["counts"], **(counts or {}))
    snaps = sorted(snapshots, key=lambda s: s.step)
    heat = [s for s in snaps if s.stage == HEATING]
    hold = [s for s in snaps if s.stage == HOLD]
    quench = [s for s in snaps if s.stage == QUENCH]
    hold = hold[int(round(hold_skip * len(hold))):]
    heat = heat[max(1, int(round(0.05 * len(heat)))):]  # not the unthermalised start
    info = {}
    out = {}
    if system == "ni":
        jump = pe_jump_temperature([s.target for s in heat], [s.pe_per_atom for s in heat],
                                   smooth=3)
        if t_melt is None:
            t_melt = jump["t_jump"]
        fcc, fcc_info = fcc_energy_window(
            heat, t_melt, jump, fit_fraction=cfg["fcc_fit_fraction_of_tm"],
            margin_k=cfg["fcc_margin_k"], max_residual=cfg["fcc_max_residual"],
            smooth=cfg["fcc_smooth"])
        fit_rows = [s for s in heat if s.target < fcc_info["crystal_line_fit_below"]]
        t_l, dt_l = cfg["liquid_quench_t"], cfg["liquid_quench_dt"]
        liq_q = [s for s in quench if abs(s.target - t_l) <= dt_l]
        n_q = min(len(liq_q), max(1, counts["liquid"] // 3))
        liquid = _evenly(hold, counts["liquid"] - n_q) + _evenly(liq_q, n_q)
        cold = [s for s in quench if s.target < cfg["amorphous_below"]]
        # energy check against crystallisation: a glass keeps a good part of the heat of
        # fusion (PE above the crystal line by > 30 % of the melting jump); a crystallised
        # cold end falls back onto the crystal line and is not labelled amorphous.
        amorphous = cold
        if len(fit_rows) >= 2 and cold and np.isfinite(jump["delta_pe"]):
            ks, bs = _linfit(np.array([s.target for s in fit_rows]),
                             np.array([s.pe_per_atom for s in fit_rows]))
            amorphous = [s for s in cold
                         if s.pe_per_atom - (ks * s.target + bs) > 0.3 * jump["delta_pe"]]
            info["excluded_crystallised"] = [s.step for s in cold if s not in amorphous]
            info["pe_jump_eV_per_atom"] = jump["delta_pe"]
        out = {"fcc": _evenly(fcc, counts["fcc"]), "liquid": liquid,
               "amorphous": _evenly(amorphous, counts["amorphous"])}
        info.update(t_melt=t_melt, **fcc_info, liquid_quench=[t_l - dt_l, t_l + dt_l],
                    amorphous_below=cfg["amorphous_below"])
    elif system == "cuzr":
        liq = hold + [s for s in quench if s.target > cfg["liquid_above"]]
        amo = [s for s in quench if s.target < cfg["amorphous_below"]]
        out = {"liquid": _evenly(liq, counts["liquid"]),
               "amorphous": _evenly(amo, counts["amorphous"])}
        info.update(liquid_above=cfg["liquid_above"], amorphous_below=cfg["amorphous_below"])
    else:
        raise ValueError(f"unknown ramp system {system!r}; known: {sorted(RAMP_SYSTEMS)}")
    for c, lst in out.items():
        if not lst:
            raise ValueError(f"{system}: no snapshot in the {c} window ({info}); run the ramp "
                             "with -var dump 1 and a dump_every small enough")
    out["_info"] = info
    return out


def build_ramp_dataset(labelled: dict, descriptor, classes, atoms_per_snapshot: int | None = None,
                       seed: int = 0, augment: dict | None = None):
    """Descriptors of the labelled snapshots: (features, labels, groups, table) where groups
    is the snapshot number (the validation split takes whole snapshots; an augmented copy
    stays in its snapshot's group) and table lists (class, step, set-point, PE/atom, atoms
    used) per snapshot.  ``augment`` = {class: (fraction, sigma)} adds, for each snapshot of
    that class, a copy with Gaussian noise N(0, sigma) on a random ``fraction`` of the atoms."""
    from .frame import Frame, read_lammps_dump

    rng = np.random.default_rng(seed)
    augment = augment or {}
    feats, labels, groups, table = [], [], [], []
    g = 0
    for k, c in enumerate(classes):
        for s in labelled[c]:
            frame = read_lammps_dump(s.path)
            frames = [frame]
            if c in augment:
                frac, sigma = augment[c]
                pos = frame.positions.copy()
                pick = rng.random(len(pos)) < frac
                pos[pick] += rng.normal(0.0, sigma, size=(int(pick.sum()), 3))
                frames.append(Frame(pos, frame.cell, frame.pbc, frame.types, frame.ids,
                                    frame.step))
            n_used = 0
            for fr in frames:
                x = descriptor.compute(fr)
                if atoms_per_snapshot and len(x) > atoms_per_snapshot:
                    x = x[np.sort(rng.choice(len(x), atoms_per_snapshot, replace=False))]
                feats.append(x.astype(np.float32))
                labels.append(np.full(len(x), k, np.int64))
                groups.append(np.full(len(x), g, np.int64))
                n_used += len(x)
            table.append(dict(cls=c, step=s.step, target_K=round(s.target, 1),
                              temperature_K=round(s.temperature, 1),
                              pe_per_atom=round(s.pe_per_atom, 5), atoms=n_used,
                              augmented=c in augment))
            g += 1
    return np.concatenate(feats), np.concatenate(labels), np.concatenate(groups), table


def train_ramp_model(system: str, data_dir, out=None, epochs: int = 10, seed: int = 0,
                     atoms_per_snapshot: int | None = None, threshold: float = 0.5,
                     t_melt: float | None = None, card: bool = True, progress: bool = False,
                     threads: int | None = None):
    """Auto-labelled training on the snapshots of a ramp run (``-var dump 1``): label whole
    snapshots (:func:`label_snapshots`), compute the Neighbors Maps, train the paper's CNN
    with a split by snapshot, export ONNX (``out``, default the shipped model path) and write
    the model card next to it.  Returns (path, report)."""
    from .neighbors_map import NeighborsMap
    from .training import export_onnx, train_classifier
    from .training.train import training_summary

    cfg = RAMP_SYSTEMS[system]
    classes = cfg["classes"]
    out = Path(out or cfg["model"])
    snaps = read_snapshot_index(data_dir)
    labelled = label_snapshots(snaps, system, t_melt=t_melt)
    descriptor = NeighborsMap(**cfg["descriptor"])
    x, y, groups, table = build_ramp_dataset(labelled, descriptor, classes, atoms_per_snapshot,
                                             seed, augment=cfg.get("augment"))
    cw = cfg["class_weights"]
    weights = [cw[c] for c in classes] if cw else None
    model, report = train_classifier(x, y, groups, classes, descriptor, arch="cnn",
                                     epochs=epochs, class_weights=weights, seed=seed,
                                     progress=progress, threads=threads)
    summary = training_summary(report, dataset=str(data_dir), extra={
        "labelling": "whole snapshots from high-confidence windows of temperature and energy",
        "windows": _jsonable(labelled["_info"]), "snapshots": table,
        "snapshots_per_class": {c: len(labelled[c]) for c in classes},
        "augmentation": {c: {"fraction": a[0], "sigma_A": a[1]}
                         for c, a in (cfg.get("augment") or {}).items()},
        "retrain": f"python -m insitu.ramps train {system}"})
    export_onnx(model, descriptor, classes, out, threshold=threshold, training_summary=summary,
                validation_accuracy=report.get("val_accuracy"), atom_types=cfg["atom_types"])
    if card:
        write_model_card(system, out, report, summary, labelled, table)
    return out, report


def write_model_card(system, out, report, summary, labelled, table) -> Path:
    cfg = RAMP_SYSTEMS[system]
    info = labelled["_info"]
    classes = cfg["classes"]
    d = cfg["descriptor"]
    lines = [f"# {Path(out).name}", "",
             f"Neighbors Map + CNN (paper's Appendix A architecture) classifying "
             f"{', '.join(classes)} environments for the {system} ramp "
             f"(`lammps_inputs/{cfg['script']}`), trained without per-atom annotation: whole "
             "snapshots are labelled from high-confidence windows of temperature and energy "
             "(Neighbors Map paper, Sec. 3.3.2 / 3.4.2).", "",
             "## Descriptor", "",
             f"- Neighbors Map, cutoff {d['cutoff']} A, n_G = {d['n_grid']}, gamma = "
             f"{d['gamma']}, beta = {d['beta']}, channels: "
             + ("1 (geometric)" if not d["channel_weights"] else
                f"{len(d['channel_weights'])}, weights {d['channel_weights']} "
                f"(types {cfg['atom_types']})"),
             f"- atom types: {cfg['atom_types']}", "",
             "## Labelling windows (thermostat set-point temperatures)", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    if cfg.get("labelling_note"):
        lines += ["", cfg["labelling_note"]]
    if cfg.get("augment"):
        lines += ["", "Augmentation (the paper's Sec. 3.2 recipe for hot crystals, crystal class "
                  "only): " + "; ".join(f"{c}: one copy per snapshot with N(0, {a[1]} A) noise "
                                        f"on {int(100 * a[0])} % of the atoms"
                                        for c, a in cfg["augment"].items())]
    lines += ["", "## Training data", "",
              "Snapshots per class: "
              + ", ".join(f"{c} {len(labelled[c])}" for c in classes)
              + f"; {report.get('n_train')} training and {report.get('n_val')} validation "
              "environments, split by snapshot (no snapshot in both sets).", "",
              "| class | step | set-point (K) | measured T (K) | PE (eV/atom) | atoms |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['cls']} | {r['step']} | {r['target_K']} | {r['temperature_K']} | "
              f"{r['pe_per_atom']} | {r['atoms']} |" for r in table]
    va = report.get("val_accuracy")
    lines += ["", "## Result", "",
              f"- epochs {report.get('epochs')}, seed {report.get('seed')}, class weights "
              f"{cfg['class_weights'] or 'none'}, {report.get('n_parameters')} parameters, "
              f"{report.get('seconds')} s",
              f"- validation accuracy (held-out snapshots): "
              f"{'n/a' if va is None else f'{100 * va:.2f} %'}",
              f"- confusion (rows truth, columns predicted, order {classes}): "
              f"{report.get('confusion')}", "",
              "Caveat: the labels are per snapshot, so the accuracy measures how well the "
              "model separates the labelled windows, not per-atom truth inside the transition.",
              "", "## Retrain (one command)", "",
              "```", f"python -m insitu.ramps train {system} --run   # ramp with dumps, then "
              "train", "```", "",
              f"Without `--run` it trains on existing snapshots in `data/{system}_ramp`. "
              f"Training summary is also in the ONNX metadata (`insitu.training`).", ""]
    card = Path(out).with_suffix(".md")
    card.write_text("\n".join(lines))
    return card


def log_from_snapshots(data_dir, model, out, timestep_ps: float = 0.001) -> Path:
    """Offline counterpart of an in-situ log: classify every snapshot of a ramp run with
    ``-var dump 1`` and write the rows in the in-situ log's layout (T, PE and the set-point
    from ``snapshots/index.txt``), with the root attribute ``source`` saying so.  Useful
    to validate or plot a ramp whose in-situ run is not available."""
    import hashlib

    import h5py

    from .frame import read_lammps_dump
    from .runtime import Classifier

    clf = Classifier.load(model)
    classes = list(clf.classes)
    cols = classes + ["unknown"]
    rows = []
    for snap in read_snapshot_index(data_dir):
        frame = read_lammps_dump(snap.path)
        res = clf.classify(frame)
        labels = np.asarray(res.labels)
        counts = {c: int(np.sum(labels == c)) for c in cols}
        rows.append((snap, counts, float(np.mean(res.confidence)),
                     float(abs(np.linalg.det(frame.cell)))))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = len(rows)
    with h5py.File(out, "w") as f:
        f["step"] = np.array([r[0].step for r in rows], np.int64)
        f["time"] = f["step"][()] * timestep_ps
        f["temperature"] = np.array([r[0].temperature for r in rows])
        f["potential_energy"] = np.array([r[0].potential_energy for r in rows])
        f["pressure"] = np.full(n, np.nan)
        f["volume"] = np.array([r[3] for r in rows])
        f["mean_confidence"] = np.array([r[2] for r in rows])
        for c in cols:
            cnt = np.array([r[1][c] for r in rows], np.int64)
            f[f"counts/{c}"] = cnt
            f[f"fractions/{c}"] = cnt / np.array([r[0].atoms for r in rows], float)
        f["extra/t_target"] = np.array([r[0].target for r in rows])
        f["extra/stage"] = np.array([r[0].stage for r in rows], float)
        for k, unit in (("time", "ps"), ("temperature", "K"), ("potential_energy", "eV"),
                        ("volume", "Angstrom^3"), ("extra/t_target", "K")):
            f[k].attrs["units"] = unit
        f.attrs["classes"] = json.dumps(classes)
        f.attrs["model_path"] = str(model)
        f.attrs["model_sha256"] = hashlib.sha256(Path(model).read_bytes()).hexdigest()
        f.attrs["descriptor"] = json.dumps(clf.descriptor.to_metadata())
        f.attrs["units"] = "metal"
        f.attrs["source"] = f"offline classification of the snapshots in {data_dir}"
    return out


def run_ramp(system: str, outdir, nprocs: int = 2, dump: bool = True, model=None,
             extra_vars: dict | None = None) -> Path:
    """Run a ramp of lammps_inputs/ with ``mpirun -np nprocs lmp`` (quick defaults)."""
    import os
    import shutil
    import subprocess
    import sysconfig

    repo = Path(__file__).resolve().parents[1]
    script = repo / "lammps_inputs" / RAMP_SYSTEMS[system]["script"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), sysconfig.get_paths()["purelib"],
                                                    env.get("PYTHONPATH")) if p)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [shutil.which("mpirun") or "mpirun", "-np", str(nprocs), "--oversubscribe",
           shutil.which("lmp") or "lmp", "-in", str(script), "-var", "outdir", str(outdir),
           "-var", "dump", "1" if dump else "0"]
    if model:
        cmd += ["-var", "model", str(model)]
    for k, v in (extra_vars or {}).items():
        cmd += ["-var", k, str(v)]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True)
    return Path(outdir)


def main_train(argv=None) -> int:
    """``python -m insitu.ramps train ni|cuzr [--run] [--data DIR] [-o MODEL]``."""
    p = argparse.ArgumentParser(prog="insitu.ramps train",
                                description="Auto-labelled training on a ramp's snapshots.")
    p.add_argument("system", choices=sorted(RAMP_SYSTEMS))
    p.add_argument("--data", default=None, help="ramp output folder with snapshots/ "
                   "(default data/<system>_ramp)")
    p.add_argument("--run", action="store_true", help="first run the quick ramp with dumps")
    p.add_argument("--nprocs", type=int, default=2)
    p.add_argument("-o", "--output", default=None, help="model path (default: models/...)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--atoms-per-snapshot", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--t-melt", type=float, default=None,
                   help="Ni: melting temperature for the fcc window (default: the PE jump)")
    args = p.parse_args(argv)
    data = Path(args.data or f"data/{args.system}_ramp")
    if args.run:
        run_ramp(args.system, data, args.nprocs, dump=True)
    path, report = train_ramp_model(args.system, data, args.output, epochs=args.epochs,
                                    seed=args.seed, atoms_per_snapshot=args.atoms_per_snapshot,
                                    t_melt=args.t_melt, progress=True, threads=args.threads)
    va = report.get("val_accuracy")
    print(f"model written to {path} (validation accuracy "
          f"{'n/a' if va is None else f'{100 * va:.2f} %'}), card {path.with_suffix('.md')}")
    return 0


def _add_validate_args(p) -> None:
    p.add_argument("logs", nargs="+", help="in-situ HDF5 log(s) of a heating / quench ramp")
    p.add_argument("--temperature", default="auto", choices=("auto", "target", "measured"),
                   help="temperature axis: thermostat set-point when logged (auto), or the "
                   "measured temperature")
    p.add_argument("--quench-t-min", type=float, default=None,
                   help="lowest temperature of the two-slope fit on the quench")
    p.add_argument("--quench-t-max", type=float, default=None,
                   help="highest temperature of that fit (default 90 %% of the quench's top)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def _validate(args) -> int:
    ok = True
    out = {}
    for path in args.logs:
        rep = validate_log(path, args.temperature, args.quench_t_min, args.quench_t_max)
        out[path] = rep
        for part in ("heating", "quench"):
            if part in rep and not rep[part]["passed"]:
                ok = False
        if not args.json:
            print(format_report(rep, path))
    if args.json:
        print(json.dumps(_jsonable(out), indent=2))
    return 0 if ok else 1


def main_validate(argv=None) -> int:
    """``insitu validate LOG.h5 [LOG.h5 ...] [--json] [--temperature auto|target|measured]``.
    Exit status 0 when every goal that applies is met, 1 otherwise."""
    p = argparse.ArgumentParser(prog="insitu validate",
                                description="Validate a ramp's learned fractions against PE(T).")
    _add_validate_args(p)
    return _validate(p.parse_args(argv))


def add_validate_parser(subparsers) -> None:
    """Register ``insitu validate`` on the CLI's subparsers (func = the validation)."""
    p = subparsers.add_parser(
        "validate", help="ramp validation: 50 %% crossings of the learned fractions vs the "
        "PE jump (heating) and the PE(T) slope change (quench)",
        description="Validate a ramp's learned fractions against PE(T).")
    _add_validate_args(p)
    p.set_defaults(func=_validate)


def main(argv=None) -> int:
    """``python -m insitu.ramps validate LOG.h5 ...``, ``... train ni|cuzr [--run]`` or
    ``... offline-log DATA_DIR MODEL -o LOG.h5``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        return main_train(argv[1:])
    if argv and argv[0] == "offline-log":
        p = argparse.ArgumentParser(prog="insitu.ramps offline-log",
                                    description="Classify a ramp's snapshots into a log.")
        p.add_argument("data", help="ramp output folder with snapshots/")
        p.add_argument("model")
        p.add_argument("-o", "--output", required=True)
        a = p.parse_args(argv[1:])
        print(f"log written to {log_from_snapshots(a.data, a.model, a.output)}")
        return 0
    if argv and argv[0] == "validate":
        argv = argv[1:]
    return main_validate(argv)


if __name__ == "__main__":
    sys.exit(main())
