"""Synthetic in-situ logs of heating / quench ramps with known transition temperatures, for
the ramp validation and plotting tests (tests/ is on sys.path, see conftest.py)."""

from __future__ import annotations

import json

import h5py
import numpy as np

N_ATOMS = 1000


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def synthetic_ramp(t_melt=2000.0, t_fcc50=2010.0, t_glass=1000.0, t_amo50=1050.0, noise=0.0,
                   seed=0, heating=True, hold=True, quench=True, classes=("fcc", "liquid",
                                                                          "amorphous")):
    """Columns of a Ni-like ramp: heating 300 -> 2500 K with a PE step of 0.18 eV/atom at
    t_melt, hold at 2500 K, quench 2500 -> 10 K with a PE slope change at t_glass."""
    rng = np.random.default_rng(seed)
    parts = []
    if heating:
        t = np.linspace(300.0, 2500.0, 221)
        pe = -4.45 + 1.3e-4 * t + 0.18 * sigmoid((t - t_melt) / 8.0)
        fcc = 1.0 - sigmoid((t - t_fcc50) / 15.0)
        parts.append((t, pe, fcc, 1.0 - fcc, 0.0 * t, 1))
    if hold:
        t = np.full(40, 2500.0)
        pe = -4.45 + 1.3e-4 * t + 0.18 + 0.0 * t
        parts.append((t, pe, 0 * t, 1 + 0 * t, 0 * t, 2))
    if quench:
        t = np.linspace(2500.0, 10.0, 250)
        # continuous hinge: slope 2.5e-4 above t_glass, 1.6e-4 below
        pe = -4.2 + 1.6e-4 * t + (2.5e-4 - 1.6e-4) * np.maximum(t - t_glass, 0.0)
        amo = sigmoid((t_amo50 - t) / 40.0)
        parts.append((t, pe, 0 * t, 1 - amo, amo, 3))
    t = np.concatenate([p[0] for p in parts])
    pe = np.concatenate([p[1] for p in parts]) + noise * rng.standard_normal(len(t))
    frac = {"fcc": np.concatenate([p[2] for p in parts]),
            "liquid": np.concatenate([p[3] for p in parts]),
            "amorphous": np.concatenate([p[4] for p in parts])}
    stage = np.concatenate([np.full(len(p[0]), p[5]) for p in parts])
    frac = {c: frac[c] for c in classes}
    return t, pe, frac, stage


def write_synthetic_log(path, t, pe_per_atom, fractions, stage=None, extra=None,
                        measured_noise=20.0, seed=1, truncate_last=0):
    """An in-situ HDF5 log in the layout of :class:`insitu.io.phase_log.PhaseLog`, written with
    plain h5py so that ``truncate_last`` can leave the fractions short (a log being written)."""
    rng = np.random.default_rng(seed)
    n = len(t)
    classes = list(fractions)
    unknown = np.clip(1.0 - sum(fractions.values()), 0.0, 1.0)
    with h5py.File(path, "w") as f:
        f["step"] = np.arange(n, dtype=np.int64) * 500
        f["time"] = np.arange(n) * 0.5
        f["temperature"] = t + measured_noise * rng.standard_normal(n)
        f["potential_energy"] = pe_per_atom * N_ATOMS
        f["pressure"] = np.zeros(n)
        f["volume"] = np.full(n, 1.1e4)
        f["mean_confidence"] = np.full(n, 0.95)
        for c in classes + ["unknown"]:
            fr = fractions[c] if c in fractions else unknown
            f[f"fractions/{c}"] = fr[: n - truncate_last]
            f[f"counts/{c}"] = np.rint(fr * N_ATOMS).astype(np.int64)
        ex = {"t_target": t} if stage is None else {"t_target": t, "stage": stage}
        ex.update(extra or {})
        for k, v in ex.items():
            f[f"extra/{k}"] = np.asarray(v, float)
        for stage_name in ("extract", "neighbors", "descriptor", "inference", "reduce", "total"):
            f[f"timings/{stage_name}"] = np.full(n, 0.01)
        f.attrs["classes"] = json.dumps(classes)
        f.attrs["model_path"] = "models/ni-fcc-liquid-amorphous.onnx"
        f.attrs["units"] = "metal"
        f.attrs["n_ranks"] = 2
    return path


def ni_ramp_log(path):
    """The Ni-like ramp log with noise and a CNA reference that collapses early."""
    t, pe, frac, stage = synthetic_ramp(noise=0.002)
    cna = np.clip(1.0 - (t - 300.0) / 1200.0, 0, 1) * (stage == 1)
    return write_synthetic_log(path, t, pe, frac, stage,
                               extra={"cna_fcc": cna, "cna_hcp": 0 * t})
