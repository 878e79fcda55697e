"""Figure of a ramp log: phase fractions and potential energy against temperature
(``insitu plot LOG.h5 -o PNG``, :mod:`insitu.cli.plot`; needs matplotlib, the ``plotting``
extra).

One column per stage of the ramp that the log holds: heating (temperature rising) and
quench (temperature axis reversed, as in the Neighbors Map paper's Figs. 5 and 7); the hold
at the top temperature is left out of both.  Top row: the learned fractions (solid), the
``unknown`` fraction (dotted) and the traditional CNA reference (dashed) when the run logged
it, and the mean mutual information (ARISE uncertainty, right axis) when the model logged
it; bottom row: the potential energy per atom.  The validation temperatures (50 % crossing
and the energy's jump or slope change) are marked with vertical lines.  The default title
names the system (input script), the model and its descriptor, the atom and MPI rank
counts: a figure that can go on a slide as it is.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from insitu.analysis.ramp_numerics import HEATING, QUENCH, log_stages, temperature_axis
from insitu.analysis.validation import energy_reference, energy_units, validate_log
from insitu.io.log_table import read_table
from insitu.io.phase_log import read_log

if TYPE_CHECKING:
    import matplotlib.figure

__all__ = ["plot_log", "make_figure", "default_title", "CLASS_COLORS", "MI_COLUMNS"]

CLASS_COLORS = {
    "fcc": "#1f77b4", "bcc": "#9467bd", "hcp": "#17becf", "cubic_diamond": "#8c564b",
    "liquid": "#d62728", "amorphous": "#2ca02c", "unknown": "#7f7f7f",
}
_FALLBACK = ["#ff7f0e", "#e377c2", "#bcbd22", "#393b79", "#637939"]
MI_COLUMNS = ("mi", "mean_mi", "mutual_information")
"""Log columns that hold the mean mutual information per call (bits), first found wins."""
DESCRIPTOR_NAMES = {"neighbors_map": "Neighbors Map", "steinhardt": "bond-orientational order"}


def _color(name, i):
    return CLASS_COLORS.get(name, _FALLBACK[i % len(_FALLBACK)])


def plot_log(path: str | Path, png: str | Path, title: str | None = None,
             temperature: str = "auto", validation: bool = True, dpi: int = 130) -> Path:
    """Write a PNG of the fractions and PE against temperature for an in-situ ramp log.

    path: HDF5 log; png: output file; temperature: 'auto' (thermostat set-point when logged),
    'target' or 'measured'; validation: draw the validation temperatures.  Returns png.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = make_figure(path, title, temperature, validation)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=dpi)
    plt.close(fig)
    return png


def make_figure(path: str | Path, title: str | None = None, temperature: str = "auto",
                validation: bool = True) -> matplotlib.figure.Figure:
    """The matplotlib figure of :func:`plot_log` (axes: 2 rows x one column per stage)."""
    import matplotlib.pyplot as plt

    log = read_log(path)
    table = read_table(path)
    mi = next((table[c] for c in MI_COLUMNS if c in table), None)
    t_all, t_label = temperature_axis(log, temperature)
    t_label = re.sub(r"\(K, [^)]*\)", "(K)", t_label)  # no smoothing notes on a slide
    stages = log_stages(log)
    report = {}
    if validation:
        try:
            report = validate_log(log, temperature)
        except (ValueError, KeyError):
            report = {}

    panels = []
    if (stages == HEATING).sum() >= 2:
        panels.append(("Heating", stages == HEATING, False, report.get("heating")))
    if (stages == QUENCH).sum() >= 2:
        panels.append(("Quench", stages == QUENCH, True, report.get("quench")))
    if not panels:  # no ramp recognised: everything in one panel
        panels.append(("Run", np.ones(len(t_all), bool), False, None))

    ncol = len(panels)
    fig, axes = plt.subplots(2, ncol, figsize=(6.2 * ncol, 7.2), sharex="col", squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]})
    # the energy curve the validation compares with (the interval mean when logged)
    t_pe, pe, source = energy_reference(log, t_all, temperature)
    pe_units = energy_units(log, source)
    pe_name = "potential energy" + (" (interval mean)" if source == "interval" else "")
    classes = list(log.fractions)
    cna = {k[4:]: v for k, v in log.extra.items() if k.startswith("cna_")}

    for col, (name, mask, reverse, val) in enumerate(panels):
        ax_f, ax_e = axes[0, col], axes[1, col]
        t = t_all[mask]
        for i, c in enumerate(classes):
            if c == "unknown":
                if np.nanmax(log.fractions[c][mask], initial=0.0) > 0.005:
                    ax_f.plot(t, log.fractions[c][mask], ":", color=_color(c, i), lw=1.4,
                              label="unknown")
                continue
            if np.nanmax(log.fractions[c], initial=0.0) < 0.02:  # never seen on this ramp
                continue
            ax_f.plot(t, log.fractions[c][mask], "-", color=_color(c, i), lw=1.8, label=c)
        for i, (c, y) in enumerate(sorted(cna.items())):
            y = y[mask]
            if np.nanmax(y, initial=0.0) < 0.02:   # e.g. CNA hcp that never shows up
                continue
            ax_f.plot(t, y, "--", color=_color(c, i), lw=1.4, alpha=0.85, label=f"{c} (CNA)")
        ax_e.plot(t_pe[mask], pe[mask], "-", color="black", lw=1.3, label=pe_name)

        if val:
            if "t_pe_jump" in val:
                marks = [(val["t_fraction_50"], f"{val['crystal_class']} 50 %: "
                          f"{val['t_fraction_50']:.0f} K", "tab:blue"),
                         (val["t_pe_jump"], f"PE jump: {val['t_pe_jump']:.0f} K", "tab:orange")]
            else:
                marks = [(val["t_fraction_50"], f"amorphous 50 %: {val['t_fraction_50']:.0f} K",
                          "tab:green"),
                         (val["t_slope_change"], f"PE slope change: {val['t_slope_change']:.0f} K",
                          "tab:orange")]
            if "hinge_coef" in val:   # the two-slope fit, as the grey lines of Fig. 7b
                a, b, c = val["hinge_coef"]
                tb = val["t_slope_change"]
                t0, t1 = val["fit_range"]
                for seg in ((t0, tb), (tb, t1)):
                    x = np.linspace(min(seg), max(seg), 20)
                    ax_e.plot(x, a + b * x + c * np.maximum(x - tb, 0.0), "-", color="0.55",
                              lw=2.5, alpha=0.6, zorder=0,
                              label="two-slope fit" if seg[0] == t0 else None)
            for x, label, color in marks:
                if np.isfinite(x):
                    ax_f.axvline(x, color=color, lw=0.9, ls="-.", alpha=0.8, label=label)
                    ax_e.axvline(x, color=color, lw=0.9, ls="-.", alpha=0.8)

        ax_f.set_ylim(-0.03, 1.03)
        ax_f.set_ylabel("Fraction of atoms")
        ax_f.set_title(name)
        ax_f.grid(alpha=0.3)
        handles, labels = ax_f.get_legend_handles_labels()
        if mi is not None and np.isfinite(mi[mask]).any():
            ax_mi = ax_f.twinx()
            (line,) = ax_mi.plot(t, mi[mask], "-", color="#6a3d9a", lw=1.0, alpha=0.8,
                                 label="mutual information")
            ax_mi.set_ylabel("Mutual information (bits)")
            ax_mi.set_ylim(0.0, 1.05 * float(np.nanmax(mi)) or 1.0)  # one scale for all
            handles, labels = handles + [line], labels + [line.get_label()]
        ax_f.legend(handles, labels, loc="best", fontsize=8, framealpha=0.9)
        ax_e.set_ylabel(f"Potential energy ({pe_units})")
        ax_e.legend(loc="best", fontsize=8, framealpha=0.9)
        ax_e.set_xlabel(t_label)
        ax_e.grid(alpha=0.3)
        if len(t):
            lo, hi = float(np.nanmin(t)), float(np.nanmax(t))
            pad = 0.02 * (hi - lo or 1.0)
            ax_e.set_xlim((hi + pad, lo - pad) if reverse else (lo - pad, hi + pad))

    if title is None:
        title = default_title(log, path)
    fig.suptitle("\n".join(textwrap.wrap(title, width=70 * ncol)), fontsize=11)
    fig.tight_layout()
    return fig


def _system_name(attrs: dict, path: str | Path) -> str:
    """The input script's name (``-in FILE`` of the logged command line), else the log's."""
    words = str(attrs.get("input_script", "")).split()
    script = next((b for a, b in zip(words, words[1:]) if a in ("-in", "-i")), None)
    if script is None and len(words) == 1:
        script = words[0]
    name = Path(script).name if script else Path(path).stem
    name = re.sub(r"^in\.|\.(lmp|in|lammps)$", "", name)  # in.melt, melt.lmp -> melt
    return name.replace("_", " ").replace("-", " ")


def default_title(log, path: str | Path) -> str:
    """'<system>: <N> atoms on <R> MPI ranks, model <name> (<descriptor>)' from the log's
    metadata (what is not logged is left out)."""
    attrs = log.attrs
    parts = [_system_name(attrs, path)]
    size = []
    if log.n_atoms:
        size.append(f"{int(log.n_atoms):,} atoms")
    ranks = attrs.get("n_ranks")
    if ranks:
        size.append(f"on {int(ranks)} MPI rank{'s' if int(ranks) != 1 else ''}")
    if size:
        parts[0] += ": " + " ".join(size)
    model = Path(str(attrs.get("model_path", ""))).stem
    if model:
        descriptor = attrs.get("descriptor")
        kind = descriptor.get("kind") if isinstance(descriptor, dict) else None
        name = DESCRIPTOR_NAMES.get(kind, kind)
        parts.append(f"model {model}" + (f" ({name})" if name else ""))
    return ", ".join(parts)
