"""Honest validation of the ramp models: validation runs never share a velocity seed (a
trajectory) or a folder with the training runs; the shipped Ni and Cu-Zr models record
their training and validation seeds; the demo, the examples and the committed validations
run other seeds;
``insitu validate`` fails a run on a training seed and reports the quench's crystal excess."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from ramp_logs import ni_ramp_log, synthetic_ramp, write_synthetic_log

from insitu.analysis.validation import format_report, goals_met, validate_log
from insitu.model import Classifier
from insitu.training.ramp_training import check_disjoint_runs

ROOT = Path(__file__).resolve().parents[2]
NI_MODEL = ROOT / "models" / "ni-fcc-liquid-amorphous.onnx"
#: system -> (shipped model, its LAMMPS input, scripts that run it, example folder)
SYSTEMS = {
    "ni": (NI_MODEL, "ni_melt_quench.lmp", ("scripts/demo.sh", "examples/ni_ramp/run.sh"),
           "examples/ni_ramp"),
    "cuzr": (ROOT / "models" / "cuzr-liquid-amorphous.onnx", "cuzr_quench.lmp",
             ("examples/cuzr_ramp/run.sh",),
             "examples/cuzr_ramp"),
}


def _training(system: str = "ni") -> dict:
    return Classifier.load(SYSTEMS[system][0], mc_passes=1).metadata["training"]


def _ni_training() -> dict:
    return _training("ni")


def test_validation_runs_must_not_repeat_training_runs(tmp_path):
    train = [dict(dir=str(tmp_path / "a"), seed=1), dict(dir=str(tmp_path / "b"), seed=2)]
    check_disjoint_runs(train, [dict(dir=str(tmp_path / "c"), seed=3)])
    with pytest.raises(ValueError, match="velocity seed 2 of a training run"):
        check_disjoint_runs(train, [dict(dir=str(tmp_path / "c"), seed=2)])
    with pytest.raises(ValueError, match="is also a training run"):
        check_disjoint_runs(train, [dict(dir=str(tmp_path / "a"), seed=None)])


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_shipped_ramp_models_record_disjoint_seeds(system):
    training = _training(system)
    seeds, val = training["training_seeds"], training["validation_seeds"]
    assert len(seeds) >= 2 and None not in seeds        # several runs, each seed known
    assert val and None not in val and not set(val) & set(seeds)
    roles = {(r["role"], r["seed"]) for r in training["runs"]}
    assert roles == {("training", s) for s in seeds} | {("validation", s) for s in val}
    # no labelled validation snapshot comes from a training run
    assert {r["seed"] for r in training["snapshots"] if r["role"] == "validation"} == set(val)
    card = SYSTEMS[system][0].with_suffix(".md").read_text()
    assert f"- training runs (velocity seeds): {seeds}" in card


def _input_default_seed(system: str = "ni") -> int:
    text = (ROOT / "lammps_inputs" / SYSTEMS[system][1]).read_text()
    return int(re.search(r"^variable seed\s+index\s+(\d+)", text, re.M).group(1))


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_demo_and_examples_run_seeds_not_used_for_training(system):
    _, _, scripts, example = SYSTEMS[system]
    training = _training(system)
    used = set(training["training_seeds"]) | set(training["validation_seeds"])
    # the demo and the example run the input's default seed unless they pass -var seed
    assert _input_default_seed(system) not in used
    for script in scripts:
        text = (ROOT / script).read_text()
        passed = [int(s) for s in re.findall(r"-var seed (\d+)", text)]
        for seed in passed or [_input_default_seed(system)]:
            assert seed not in used, f"{script} runs seed {seed}, a training/validation seed"
    # every committed in-situ validation names its run's seed, none a training seed
    reports = sorted((ROOT / example).glob("validation*.txt"))
    assert reports
    for path in reports:
        seeds = [int(s) for s in re.findall(r"run velocity seed (\d+)", path.read_text())]
        assert seeds, f"{path.name} does not state the run's velocity seed"
        assert not set(seeds) & used, path.name


def test_validate_fails_a_run_on_a_training_seed(tmp_path):
    t, pe, fr, st = synthetic_ramp()
    seed = _ni_training()["training_seeds"][0]
    for run_seed, ok in ((seed, False), (987654321, True)):
        path = write_synthetic_log(tmp_path / f"{run_seed}.h5", t, pe, fr, st,
                                   extra={"run_seed": np.full(len(t), run_seed)})
        with h5py.File(path, "a") as f:
            f.attrs["model_path"] = str(NI_MODEL)
        rep = validate_log(path)
        assert rep["provenance"]["seed_is_training"] is not ok
        assert goals_met(rep) is ok
        assert ("a training trajectory does not validate" in format_report(rep)) is not ok


def test_validate_reports_the_quench_crystal_excess(tmp_path):
    ok = validate_log(ni_ramp_log(tmp_path / "ok.h5"))
    assert ok["quench"]["excess"]["passed"] and goals_met(ok)
    assert "fcc fraction during the quench minus its final value (max)" in format_report(ok)
    t, pe, fr, st = synthetic_ramp()
    quench = st == 3
    bump = np.exp(-((t - 1200.0) / 100.0) ** 2) * quench * 0.3     # phantom crystal
    fr = dict(fr, fcc=fr["fcc"] + bump, liquid=np.clip(fr["liquid"] - bump, 0, None))
    bad = validate_log(write_synthetic_log(tmp_path / "bad.h5", t, pe, fr, st))
    x = bad["quench"]["excess"]
    assert x["max_excess"] == pytest.approx(0.3, abs=0.03) and abs(x["at_t"] - 1200) < 60
    assert not x["passed"] and not goals_met(bad)


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_ramp_train_run_seeds_are_disjoint_from_the_demo_seed(system):
    """`insitu ramp train SYSTEM --run` makes its training and validation runs with seeds
    that are neither each other's nor the input's default (the demo's), and they are the
    shipped model's."""
    import argparse

    from insitu.cli import ramp

    parser = argparse.ArgumentParser()
    ramp.add_arguments(parser)
    args = parser.parse_args(["train", system, "--run"])
    assert not set(args.seeds) & set(args.val_seeds)
    assert _input_default_seed(system) not in set(args.seeds) | set(args.val_seeds)
    assert set(args.seeds) == set(_training(system)["training_seeds"])
    assert set(args.val_seeds) == set(_training(system)["validation_seeds"])
