"""Numerics of the papers' heating / quench ramps: smoothing, stages, 50 % crossings, and the
two energy markers the learned fractions are checked against (Neighbors Map paper, Figs. 5
and 7): the potential-energy jump on heating (melting, a first-order step in PE(T)) and the
change of slope of PE(T) on a quench (the glass transition).

Pure numpy on row-ordered arrays; reading logs is :mod:`insitu.io.phase_log`, the validation
built on these numbers is :mod:`insitu.analysis.validation`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["HEATING", "HOLD", "QUENCH", "running_mean", "infer_stages", "crossings",
           "temperature_axis", "log_stages",
           "crossing_temperature", "linear_fit", "pe_jump_temperature",
           "slope_change_temperature"]

#: stage codes of a ramp row (``extra/stage`` in the log, ``stage`` in snapshots/index.txt)
HEATING, HOLD, QUENCH = 1, 2, 3


def running_mean(y: ArrayLike, window: int) -> np.ndarray:
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


def infer_stages(temperature: ArrayLike, window: int = 9, tol: float = 0.03) -> np.ndarray:
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


def crossings(x: ArrayLike, y: ArrayLike, level: float = 0.5) -> np.ndarray:
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


def crossing_temperature(temperature: ArrayLike, fraction: ArrayLike, level: float = 0.5,
                         smooth: int = 3) -> float:
    """Temperature where a (row-ordered) fraction crosses ``level``: the median of the
    crossings of its running mean (one crossing for a clean transition; noise around the
    level gives an odd number of them around the same place).  NaN if it never crosses."""
    xs = crossings(temperature, running_mean(fraction, smooth), level)
    return float(np.median(xs)) if len(xs) else float("nan")


def linear_fit(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Least-squares line through (x, y): array [slope, intercept]."""
    a = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return coef  # slope, intercept


def pe_jump_temperature(temperature: ArrayLike, pe: ArrayLike, smooth: int = 5,
                        margin_k: float | None = None, fit_k: float | None = None) -> dict:
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
    ks, bs = linear_fit(t[below], e[below])
    kl, bl = linear_fit(t[above], e[above])
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


def slope_change_temperature(temperature: ArrayLike, pe: ArrayLike, t_min: float | None = None,
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


def temperature_axis(log, which: str = "auto") -> tuple[np.ndarray, str]:
    """(T, label) of a :class:`insitu.io.phase_log.LogData`: the thermostat set-point if
    logged (``which='auto'|'target'``), else the measured temperature smoothed over 5 rows
    (``which='measured'``)."""
    if which in ("auto", "target") and "t_target" in log.extra:
        return np.asarray(log.extra["t_target"], float), "Thermostat temperature (K)"
    if which == "target":
        raise KeyError("the log has no extra/t_target (thermostat set-point)")
    return running_mean(log.temperature, 5), "Temperature (K, 5-row mean)"


def log_stages(log) -> np.ndarray:
    """Stage of each row of a log (1 heating, 2 hold, 3 quench): ``extra/stage`` when
    logged, else inferred from the temperature history."""
    if "stage" in log.extra:
        return np.rint(np.asarray(log.extra["stage"], float)).astype(int)
    return infer_stages(log.temperature)
