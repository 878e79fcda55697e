"""Ramp numerics and validation (insitu.analysis) on synthetic logs with known transition
temperatures, the log reader (insitu.io.phase_log), the ``insitu validate`` command, and the
auto-labelling of snapshots (insitu.training.autolabel / ramp_systems)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from ramp_logs import N_ATOMS, ni_ramp_log, sigmoid, synthetic_ramp, write_synthetic_log

from insitu.analysis import ramp_numerics as numerics
from insitu.analysis.validation import format_report, goals_met, jsonable, validate_log
from insitu.cli import main as cli_main
from insitu.io.phase_log import LogData, PhaseLog, read_log
from insitu.training.autolabel import (
    evenly,
    label_snapshots,
    read_run_info,
    read_snapshot_index,
)
from insitu.training.ramp_systems import RAMP_SYSTEMS, get_ramp_system

NI, CUZR = RAMP_SYSTEMS["ni"], RAMP_SYSTEMS["cuzr"]


@pytest.fixture
def ni_log(tmp_path):
    return ni_ramp_log(tmp_path / "ni.h5")


# ----------------------------------------------------------------------------- numerics

def test_running_mean_keeps_constant_and_ends():
    y = np.full(10, 3.0)
    assert np.allclose(numerics.running_mean(y, 5), 3.0)
    ramp = np.arange(10.0)
    assert np.allclose(numerics.running_mean(ramp, 3)[1:-1], ramp[1:-1])
    assert numerics.running_mean(ramp, 1) is not ramp


def test_crossings_interpolate_both_directions():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert np.allclose(numerics.crossings(x, [1.0, 0.8, 0.2, 0.0], 0.5), [1.5])
    assert np.allclose(numerics.crossings(x, [0.0, 0.0, 1.0, 1.0], 0.5), [1.5])
    assert len(numerics.crossings(x, [0.9, 0.8, 0.7, 0.6], 0.5)) == 0
    assert np.isnan(numerics.crossing_temperature(x, [0.9, 0.8, 0.7, 0.6]))


def test_crossing_temperature_noisy_is_near_truth():
    rng = np.random.default_rng(3)
    t = np.linspace(300, 2500, 300)
    f = 1 - sigmoid((t - 1800) / 20) + 0.03 * rng.standard_normal(len(t))
    assert abs(numerics.crossing_temperature(t, f) - 1800) < 15


@pytest.mark.parametrize("t_melt", [1700.0, 2000.0, 2300.0])
def test_pe_jump_found_within_a_few_kelvin(t_melt):
    rng = np.random.default_rng(0)
    t = np.linspace(300, 2500, 221)
    pe = -4.45 + 1.3e-4 * t + 0.18 * sigmoid((t - t_melt) / 8) + 0.003 * rng.standard_normal(221)
    r = numerics.pe_jump_temperature(t, pe)
    assert abs(r["t_jump"] - t_melt) < 15
    assert r["delta_pe"] == pytest.approx(0.18, abs=0.03)


def test_pe_jump_on_a_decreasing_axis():
    t = np.linspace(2500, 300, 221)
    pe = -4.45 + 1.3e-4 * t + 0.18 * sigmoid((t - 1500) / 8)
    assert abs(numerics.pe_jump_temperature(t, pe)["t_jump"] - 1500) < 15


def test_pe_jump_too_few_rows():
    with pytest.raises(ValueError, match="too few rows"):
        numerics.pe_jump_temperature([1, 2, 3], [1, 2, 3])


def test_slope_change_recovers_the_hinge():
    t = np.linspace(2500, 10, 250)
    pe = -4.2 + 1.6e-4 * t + 0.9e-4 * np.maximum(t - 950.0, 0)
    r = numerics.slope_change_temperature(t, pe)
    assert r["t_break"] == pytest.approx(950.0, abs=5)
    assert r["slope_low"] == pytest.approx(1.6e-4, rel=1e-3)
    assert r["slope_high"] == pytest.approx(2.5e-4, rel=1e-3)


def test_slope_change_with_noise_and_range():
    rng = np.random.default_rng(1)
    t = np.linspace(2500, 10, 250)
    pe = -4.2 + 1.6e-4 * t + 0.9e-4 * np.maximum(t - 1100.0, 0) + 0.002 * rng.standard_normal(250)
    # a curved top (thermostat lag) that the range leaves out
    pe[t > 2300] += 0.05
    r = numerics.slope_change_temperature(t, pe, t_max=2250)
    assert abs(r["t_break"] - 1100) < 120


def test_infer_stages_without_logged_stage():
    t = np.concatenate([np.linspace(300, 2500, 100), np.full(30, 2500.0),
                        np.linspace(2500, 10, 100)])
    s = numerics.infer_stages(t)
    assert (s[:90] == 1).all() and (s[105:125] == 2).all() and (s[-90:] == 3).all()
    q = numerics.infer_stages(np.linspace(2000, 50, 100))  # a pure quench
    assert (q[10:] == 3).all() and not (q == 1).any()


# ----------------------------------------------------------------------------- validation

def test_validate_synthetic_ni_log_passes(ni_log):
    rep = validate_log(ni_log)
    h, q = rep["heating"], rep["quench"]
    assert h["crystal_class"] == "fcc"
    assert h["t_pe_jump"] == pytest.approx(2000, abs=15)
    assert h["t_fraction_50"] == pytest.approx(2010, abs=10)
    assert h["passed"] and abs(h["difference"]) < 50
    assert h["t_cna_50"] == pytest.approx(900, abs=30)
    assert q["t_slope_change"] == pytest.approx(1000, abs=60)
    assert q["t_fraction_50"] == pytest.approx(1050, abs=15)
    assert q["passed"]
    assert rep["pe_units"] == "eV/atom"


def test_validation_uses_the_interval_mean_energy_when_logged(tmp_path):
    # a small run: the energy at one step scatters by ~10 meV/atom from row to row, its mean
    # over each 500-step interval by ~1 meV/atom; the mean belongs to the set-point's mean
    # (half an interval earlier on a ramp)
    t, pe, frac, stage = synthetic_ramp(t_glass=900.0, t_amo50=950.0)
    rng = np.random.default_rng(3)
    shift = np.where(stage == 3, 5.0, np.where(stage == 1, -5.0, 0.0))
    extra = {"pe_mean": pe + 0.001 * rng.standard_normal(len(t)), "t_target_mean": t + shift}
    noisy = pe + 0.012 * rng.standard_normal(len(t))
    path = write_synthetic_log(tmp_path / "mean.h5", t, noisy, frac, stage, extra=extra)
    rep = validate_log(path)
    assert "pe_mean" in rep["energy"] and "pe_mean" in format_report(rep)
    assert rep["quench"]["t_slope_change"] == pytest.approx(900 + 5, abs=40)
    assert rep["heating"]["t_pe_jump"] == pytest.approx(2000 - 5, abs=15)
    step = validate_log(path, energy="step")
    assert "each analysis step" in step["energy"]
    errors = [abs(validate_log(write_synthetic_log(
        tmp_path / f"n{s}.h5", t, pe + 0.012 * np.random.default_rng(s).standard_normal(len(t)),
        frac, stage, extra=extra), energy="step")["quench"]["t_slope_change"] - 900.0)
        for s in range(4)]
    assert max(errors) > 40  # the step energy alone locates the slope change poorly
    with pytest.raises(KeyError, match="pe_mean"):
        validate_log(ni_ramp_log(tmp_path / "plain.h5"), energy="interval")


def test_validate_reports_failure_when_fraction_is_off(tmp_path):
    t, pe, frac, stage = synthetic_ramp(t_melt=2000, t_fcc50=1700, t_glass=1000, t_amo50=500)
    path = write_synthetic_log(tmp_path / "bad.h5", t, pe, frac, stage)
    rep = validate_log(path)
    assert not rep["heating"]["passed"]
    assert rep["heating"]["difference"] == pytest.approx(-300, abs=20)
    assert not rep["quench"]["passed"]
    assert not goals_met(rep)
    assert cli_main(["validate", str(path)]) == 1


def test_validate_cuzr_like_quench_only(tmp_path):
    t, pe, frac, stage = synthetic_ramp(heating=False, t_glass=700, t_amo50=720,
                                        classes=("liquid", "amorphous"))
    path = write_synthetic_log(tmp_path / "cuzr.h5", t, pe, frac, stage=None)
    rep = validate_log(path)  # stages inferred from the temperature
    assert "heating" not in rep
    assert rep["quench"]["t_slope_change"] == pytest.approx(700, abs=40)
    assert rep["quench"]["passed"]


def test_measured_temperature_axis(tmp_path):
    t, pe, frac, stage = synthetic_ramp(quench=False, hold=False)
    path = write_synthetic_log(tmp_path / "m.h5", t, pe, frac, stage, measured_noise=10.0)
    rep = validate_log(path, temperature="measured")
    assert rep["temperature_axis"].startswith("Temperature")
    assert abs(rep["heating"]["difference"]) < 50


def test_read_log_of_a_run_in_progress(tmp_path):
    t, pe, frac, stage = synthetic_ramp()
    path = write_synthetic_log(tmp_path / "p.h5", t, pe, frac, stage, truncate_last=3)
    log = read_log(path)
    assert len(log.temperature) == len(t) - 3
    assert all(len(v) == len(t) - 3 for v in log.fractions.values())
    assert log.classes == ["fcc", "liquid", "amorphous"]
    assert list(log.fractions)[-1] == "unknown"
    assert log.n_atoms == pytest.approx(N_ATOMS, rel=0.01)


def test_read_log_rejects_other_files(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f["foo"] = np.zeros(3)
    with pytest.raises(ValueError, match="not an in-situ log"):
        read_log(p)


def test_validate_command_prints_figures(ni_log, capsys):
    assert cli_main(["validate", str(ni_log)]) == 0
    out = capsys.readouterr().out
    assert "fcc fraction crosses 50 %" in out and "PASS" in out
    assert cli_main(["validate", str(ni_log), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[str(ni_log)]["heating"]["passed"] is True


# ----------------------------------------------------------------------------- auto-labelling

def _fake_snapshots(tmp_path, crystallise=False, msd=True, diffusive_at=(), cna_at=()):
    """index.txt + empty dump files of a Ni-like ramp (1 ps apart): heating with a PE jump
    at 2000 K (crystal not diffusive below it), hold, quench with a PE(T) slope change at
    900 K (diffusive above it).  ``crystallise``: the quench's cold end falls onto the
    crystal line; ``diffusive_at``: heating set-points where the MSD jumps by 2 A^2 (and stays up);
    ``cna_at``: quench set-points with a CNA fcc fraction of 0.5; ``msd``: write the msd and
    CNA columns."""
    d = tmp_path / "snapshots"
    d.mkdir()
    rows = ["# stage step temperature_K potential_energy_eV target_K atoms msd_A2 cna_fcc"]
    step, m, jumps = 0, 0.0, 0.0

    def row(stage, t, e, m, cna):
        return (f"{stage} {step} {t:.1f} {e * 864:.4f} {t:.1f} 864"
                + (f" {m:.5f} {cna:.4f}" if msd else ""))

    for t in np.linspace(300, 2500, 111):           # heating, jump at 2000 K
        e = -4.45 + 1.3e-4 * t + 0.18 * (t > 2000)
        if any(abs(t - ts) < 1 for ts in diffusive_at):
            jumps += 2.0
        m = 0.02 + 1e-4 * t + jumps if t <= 2000 else m + 1.0
        rows.append(row(1, t, e, m, 1.0 if t < 1000 else 0.3))
        step += 1000
    for _ in range(20):                             # hold
        m += 1.0
        rows.append(row(2, 2500.0, -4.45 + 1.3e-4 * 2500 + 0.18, m, 0.0))
        step += 1000
    m = 0.0
    for t in np.linspace(2500, 10, 26):             # quench, slope change at 900 K
        e = -4.45 + 0.12 + 1.3e-4 * t + 1.0e-4 * max(t - 900.0, 0.0)
        if crystallise and t < 800:
            e = -4.45 + 1.3e-4 * t + 0.02
        m += 0.5 if t > 900 else 0.001
        cna = 0.5 if any(abs(t - tc) < 1 for tc in cna_at) else 0.0
        rows.append(row(3, t, e, m, cna))
        step += 1000
    rows.append(rows[-1])                            # duplicated row at a boundary
    (d / "index.txt").write_text("\n".join(rows) + "\n")
    (d / "run.txt").write_text("system ni seed 77 cells 6 heat_rate 2e13\n")
    for r in rows[1:]:
        (d / f"ni.{int(r.split()[1]):09d}.dump").write_text("")
    return tmp_path


def test_label_snapshots_ni_from_evidence(tmp_path):
    """fcc = the superheated crystal up to the PE jump, liquid = hold + the supercooled
    liquid of the quench (above the slope change), amorphous = the glass below it; the
    snapshots at the jumps are dropped."""
    snaps = read_snapshot_index(_fake_snapshots(tmp_path))
    assert len(snaps) == 111 + 20 + 26
    assert snaps[1].msd == pytest.approx(0.02 + 1e-4 * 320) and snaps[1].cna_fcc == 1.0
    assert read_run_info(tmp_path) == {"system": "ni", "seed": 77, "cells": 6,
                                       "heat_rate": 2e13}
    lab = label_snapshots(snaps, NI)
    info = lab["_info"]
    assert info["t_pe_jump"] == pytest.approx(2000, abs=30)
    assert info["t_slope_change"] == pytest.approx(900, abs=60)
    assert len(lab["fcc"]) == 10 and len(lab["liquid"]) == 18 and len(lab["amorphous"]) == 6
    fcc = [s.target for s in lab["fcc"]]
    assert all(s.stage == 1 for s in lab["fcc"]) and max(fcc) < info["fcc_below"]
    assert max(fcc) >= info["pe_jump_onset"] - 60.0          # up to the jump, not 2/3 T_m
    liq_q = [s.target for s in lab["liquid"] if s.stage == 3]
    assert len(liq_q) == 15 and sum(s.stage == 2 for s in lab["liquid"]) == 3
    assert min(liq_q) > info["t_slope_change"] + 150 and min(liq_q) < 1300  # supercooled
    assert all(s.stage == 3 and s.target < info["t_slope_change"] - 150
               for s in lab["amorphous"])
    assert info["dropped"]["quench: glass transition"] >= 2
    assert info["dropped"]["heating: melting step or liquid"] >= 25


def test_ni_labels_drop_contradicting_evidence(tmp_path):
    """A heating snapshot that diffuses is not fcc; a quench snapshot that CNA finds
    crystalline is neither liquid nor amorphous."""
    lab = label_snapshots(read_snapshot_index(_fake_snapshots(
        tmp_path, diffusive_at=(1200.0,), cna_at=(1205.2,))), NI, counts={"fcc": 200,
                                                                        "liquid": 100})
    assert not any(abs(s.target - 1200.0) < 1 for s in lab["fcc"])
    assert any(abs(s.target - 1100.0) < 1 for s in lab["fcc"])        # outside the MSD window
    assert not any(abs(s.target - 1205.2) < 1 for s in lab["liquid"])
    info = lab["_info"]
    assert info["dropped"]["heating: diffusive below the jump"] >= 1
    assert info["dropped"]["quench: crystallised (CNA or PE)"] == 1


def test_ni_labels_without_msd_columns(tmp_path):
    """An index without msd / CNA columns (older runs) is labelled from the energy alone."""
    lab = label_snapshots(read_snapshot_index(_fake_snapshots(tmp_path, msd=False)), NI)
    assert not lab["_info"]["msd_logged"]
    assert len(lab["fcc"]) == 10 and len(lab["amorphous"]) == 6


def test_label_snapshots_ni_refuses_a_crystallised_cold_end(tmp_path):
    snaps = read_snapshot_index(_fake_snapshots(tmp_path, crystallise=True))
    with pytest.raises(ValueError, match="no snapshot in the amorphous window"):
        label_snapshots(snaps, NI)


def _fake_glass_quench(tmp_path, frozen_between=(0.0, 0.0), cna_at=()):
    """index.txt + empty dumps of a Cu-Zr-like run (2 ps apart): a hold at 2000 K, then a
    quench to 50 K with a PE(T) slope change at 800 K, diffusive above it (the MSD grows by
    1 A^2 per snapshot) and not below (0.001).  ``frozen_between``: quench set-points
    (lo, hi) above T_g where the MSD does not grow either; ``cna_at``: set-points with a
    CNA fcc fraction of 0.5."""
    d = tmp_path / "snapshots"
    d.mkdir()
    rows = ["# stage step temperature_K potential_energy_eV target_K atoms msd_A2 cna_fcc"]
    step, m = 0, 0.0
    for t in [2000.0] * 6 + list(np.linspace(2000, 50, 60)):
        stage = 2 if step < 12000 else 3
        if step == 12000:
            m = 0.0
        e = -4.85 + 1.2e-4 * t + 0.9e-4 * max(t - 800.0, 0.0)
        frozen = t < 800 or frozen_between[0] <= t <= frozen_between[1]
        m += 0.001 if frozen and stage == 3 else 1.0
        cna = 0.5 if any(abs(t - c) < 1 for c in cna_at) else 0.0
        rows.append(f"{stage} {step} {t:.2f} {e * 2000:.4f} {t:.2f} 2000 {m:.5f} {cna:.4f}")
        (d / f"cuzr.{step:09d}.dump").write_text("")
        step += 2000
    (d / "index.txt").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_label_snapshots_cuzr_from_evidence(tmp_path):
    """liquid = hold + the supercooled liquid above the run's own slope change (diffusive);
    amorphous = the glass below it (not diffusive); the glass transition is dropped."""
    lab = label_snapshots(read_snapshot_index(_fake_glass_quench(tmp_path)), CUZR)
    info = lab["_info"]
    assert info["t_slope_change"] == pytest.approx(800, abs=60)
    assert len(lab["liquid"]) == CUZR.counts["liquid"]
    assert len(lab["amorphous"]) == CUZR.counts["amorphous"]
    assert all(s.stage == 3 and s.target < info["amorphous_below"] for s in lab["amorphous"])
    liq_q = [s.target for s in lab["liquid"] if s.stage == 3]
    assert sum(s.stage == 2 for s in lab["liquid"]) == CUZR.windows["liquid_from_hold"]
    assert min(liq_q) > info["liquid_above"] and min(liq_q) < 1300     # supercooled
    assert info["dropped"]["quench: glass transition"] >= 2


def test_cuzr_labels_drop_contradicting_evidence(tmp_path):
    """A supercooled-liquid snapshot that does not diffuse, or that CNA finds crystalline,
    is not liquid."""
    temps = np.linspace(2000, 50, 60)
    frozen = (float(temps[16]), float(temps[10]))        # 1472-1670 K: no diffusion
    cryst = float(temps[24])                             # 1207 K: CNA finds fcc
    lab = label_snapshots(read_snapshot_index(_fake_glass_quench(
        tmp_path, frozen_between=frozen, cna_at=(cryst,))), CUZR,
        counts={"liquid": 100, "amorphous": 100})
    liquid = [s.target for s in lab["liquid"]]
    assert not any(abs(t - cryst) < 1 for t in liquid)
    assert any(abs(t - float(temps[25])) < 1 for t in liquid)       # its neighbours stay
    assert not any(abs(t - float(temps[13])) < 1 for t in liquid)   # mid frozen span
    info = lab["_info"]
    assert info["dropped"]["quench: crystallised (CNA)"] == 1
    assert info["dropped"]["quench: MSD contradicts"] >= 3


def test_snapshot_index_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="dump 1"):
        read_snapshot_index(tmp_path)


def test_validate_picks_the_crystal_the_ramp_starts_in(tmp_path):
    """A general crystal model (fcc, bcc, hcp, liquid) on the hcp ramp: validate hcp."""
    t, pe, frac, stage = synthetic_ramp(quench=False, hold=False, t_melt=1100, t_fcc50=1110)
    fractions = {"fcc": 0 * t, "bcc": 0.02 + 0 * t, "hcp": frac["fcc"] - 0.02,
                 "liquid": frac["liquid"]}
    path = write_synthetic_log(tmp_path / "hcp.h5", t, pe, fractions, stage)
    rep = validate_log(path)
    assert rep["heating"]["crystal_class"] == "hcp"
    assert rep["heating"]["passed"]
    assert "quench" not in rep


def test_pe_jump_ignores_far_crossings_of_noisy_branches():
    """A short, noisy liquid branch extrapolates onto the solid line far below the melt;
    the jump must still be found at the step (the median of all crossings was not)."""
    t = np.linspace(100, 1400, 134)
    clean = np.where(t < 1150, -1.51 + 1.6e-4 * (t - 100), -1.20 + 5e-4 * (t - 1150))
    for seed in range(12):
        e = clean + np.random.default_rng(seed).normal(0, 0.008, len(t))
        r = numerics.pe_jump_temperature(t, e)
        assert abs(r["t_jump"] - 1150) < 30, (seed, r)
        assert 0.1 < r["delta_pe"] < 0.2


# ----------------------------------------------------------------------------- log reader

def test_read_log_of_a_phase_log(tmp_path):
    """The one writer and the one reader agree on every column."""
    path = tmp_path / "pl.h5"
    log = PhaseLog(path, ["fcc", "liquid"], ["extract", "total"], extra=("t_target",),
                   attrs={"model_path": "m.onnx", "n_ranks": 2, "descriptor": {"kind": "x"}},
                   extra_units={"t_target": "K"})
    for i in range(4):
        log.append(10 * i, {"time": 0.01 * i, "temperature": 300.0 + i,
                            "potential_energy": -4.0 * 100, "volume": 1e3},
                   np.array([60 - i, 40, i]), 0.9, {"total": 0.5}, {"t_target": 300.0})
    data = read_log(path)
    assert isinstance(data, LogData) and len(data) == 4
    np.testing.assert_array_equal(data.step, [0, 10, 20, 30])
    assert np.isnan(data.pressure).all() and np.allclose(data.volume, 1e3)
    np.testing.assert_allclose(data.mean_confidence, 0.9)
    assert list(data.fractions) == ["fcc", "liquid", "unknown"]
    np.testing.assert_allclose(data.fractions["unknown"], np.arange(4) / 100)
    np.testing.assert_array_equal(data.counts["fcc"], [60, 59, 58, 57])
    assert data.timings["total"][0] == 0.5 and np.isnan(data.timings["extract"]).all()
    assert data.n_atoms == 100 and np.allclose(data.pe_per_atom(), -4.0)
    assert data.attrs["classes"] == ["fcc", "liquid"] and data.attrs["n_ranks"] == 2
    assert data.attrs["descriptor"] == {"kind": "x"} and data.attrs["units"] == "metal"
    with h5py.File(path) as f:
        assert f["extra/t_target"].attrs["units"] == "K"
        assert f["temperature"].attrs["units"] == "K"
    half = data.select(data.step >= 20)
    assert len(half) == 2 and half.counts["fcc"].tolist() == [58, 57]
    assert half.timings["total"].shape == (2,) and half.attrs is data.attrs


def test_read_log_cuts_every_column_to_complete_rows(tmp_path):
    t, pe, frac, stage = synthetic_ramp()
    path = write_synthetic_log(tmp_path / "p.h5", t, pe, frac, stage, truncate_last=5)
    data = read_log(path)
    for group in (data.fractions, data.counts, data.timings, data.extra):
        assert all(len(v) == len(t) - 5 for v in group.values())
    assert len(data.pressure) == len(data.volume) == len(t) - 5


# ----------------------------------------------------------------------------- reports

def test_jsonable_and_format_report(ni_log):
    assert jsonable({"a": [1.0, float("nan")], "b": (float("inf"),)}) == {"a": [1.0, None],
                                                                         "b": [None]}
    rep = validate_log(read_log(ni_log))  # a LogData works as well as a path
    assert goals_met(rep)
    text = format_report(rep, "ni.h5")
    assert text.startswith("ramp validation ni.h5") and "PASS" in text and "FAIL" not in text
    assert "nothing to validate" in format_report({"temperature_axis": "T", "n_rows": 0,
                                                   "classes": []})
    assert goals_met({})


# ----------------------------------------------------------------------------- registry

def test_ramp_system_registry():
    assert set(RAMP_SYSTEMS) == {"ni", "cuzr"}
    assert get_ramp_system("ni") is NI and NI.classes == ["fcc", "liquid", "amorphous"]
    assert set(NI.counts) == set(NI.classes) and set(CUZR.counts) == set(CUZR.classes)
    with pytest.raises(ValueError, match="known: \\['cuzr', 'ni'\\]"):
        get_ramp_system("fe")


def test_a_new_system_is_one_entry(tmp_path):
    """Another glass former reuses the quench labeller with its own parameters (no msd
    column here: the energy alone decides)."""
    from dataclasses import replace

    d = tmp_path / "snapshots"
    d.mkdir()
    rows = ["# header"]
    for k, t in enumerate([1800.0] * 5 + list(np.linspace(1800, 100, 35))):
        e = 2000 * (-4.0 + 1e-4 * t + 1e-4 * max(t - 900.0, 0.0))    # T_g = 900 K
        rows.append(f"{2 if k < 5 else 3} {k * 100} {t} {e:.4f} {t} 2000")
        (d / f"x.{k * 100:09d}.dump").write_text("")
    (d / "index.txt").write_text("\n".join(rows))
    windows = dict(CUZR.windows, liquid_margin_k=300.0, glass_margin_k=400.0,
                   liquid_from_hold=1)
    other = replace(CUZR, name="other", counts={"liquid": 4, "amorphous": 3},
                    windows=windows)
    lab = other.label_snapshots(read_snapshot_index(tmp_path))
    assert len(lab["liquid"]) == 4 and len(lab["amorphous"]) == 3
    info = lab["_info"]
    assert info["t_slope_change"] == pytest.approx(900, abs=50) and not info["msd_logged"]
    assert all(s.target > info["liquid_above"] for s in lab["liquid"])
    assert all(s.target < info["amorphous_below"] for s in lab["amorphous"])
    with pytest.raises(ValueError, match="other: no snapshot in the amorphous window"):
        replace(other, windows=dict(windows, glass_margin_k=850.0)
                ).label_snapshots(read_snapshot_index(tmp_path))


def test_evenly_keeps_both_ends():
    assert evenly(range(10), 3) == [0, 4, 9]
    assert evenly([1, 2], 5) == [1, 2] and evenly([1, 2, 3], None) == [1, 2, 3]
