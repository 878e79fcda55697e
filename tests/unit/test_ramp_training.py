"""Auto-labelled ramp training without LAMMPS (insitu.training.ramp_training): fake ramp
snapshots (real dump files of noisy lattices) -> labels -> Neighbors Maps -> CNN -> ONNX +
model card; the offline log of the snapshots (``insitu ramp offline-log``) through the one
log writer; the two model cards (insitu.training.model_card)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx  # noqa: E402,F401
import pytest
import torch  # noqa: E402,F401

from insitu.analysis.ramp_numerics import log_stages, temperature_axis  # noqa: E402
from insitu.analysis.validation import validate_log  # noqa: E402
from insitu.cli import main as cli_main  # noqa: E402
from insitu.io.phase_log import read_log  # noqa: E402
from insitu.model import Classifier  # noqa: E402
from insitu.testing import lattice, thermal, write_dump  # noqa: E402
from insitu.training.model_card import (  # noqa: E402
    accuracy_text,
    pct,
    write_crystal_card,
)
from insitu.training.ramp_systems import RAMP_SYSTEMS  # noqa: E402
from insitu.training.ramp_training import (  # noqa: E402
    build_ramp_dataset,
    log_from_snapshots,
    train_ramp_model,
)

#: a small glass-former-like system: hot snapshots are very noisy fcc, cold ones barely noisy
TOY = replace(RAMP_SYSTEMS["cuzr"], name="toy", counts={"liquid": 3, "amorphous": 3},
              descriptor=dict(cutoff=4.0, n_grid=16, gamma=2.0, beta=3.0,
                              channel_weights=None),
              atom_types={1: "Ni"},
              windows=dict(RAMP_SYSTEMS["cuzr"].windows, liquid_margin_k=300.0,
                           glass_margin_k=400.0, liquid_from_hold=1))


def _toy_run(root, seed):
    """A toy run's snapshots (noise drawn from ``seed``) and its run.txt with the seed."""
    d = root / "snapshots"
    d.mkdir()
    rows = ["# stage step temperature_K potential_energy_eV target_K atoms"]
    targets = [1800.0] * 4 + list(np.linspace(1800.0, 100.0, 18))
    for k, t in enumerate(targets):
        step = 1000 * k
        frame = thermal(lattice("fcc", 3.52, 3), 0.02 + 0.25 * (t > 1000), seed=100 * seed + k)
        frame.step = step
        write_dump(d / f"toy.{step:09d}.dump", frame)
        pe = -4.4 + 1e-4 * t + 1e-4 * max(t - 1000.0, 0.0)      # T_g 1000 K
        rows.append(f"{2 if k < 4 else 3} {step} {t + 5} {pe * len(frame):.4f} "
                    f"{t} {len(frame)}")
    (d / "index.txt").write_text("\n".join(rows) + "\n")
    (d / "run.txt").write_text(f"system toy seed {seed} cells 3\n")
    return root


@pytest.fixture(scope="module")
def ramp_dir(tmp_path_factory):
    return _toy_run(tmp_path_factory.mktemp("toy_ramp"), 1)


@pytest.fixture(scope="module")
def val_dir(tmp_path_factory):
    return _toy_run(tmp_path_factory.mktemp("toy_ramp_val"), 2)


def test_build_ramp_dataset_groups_and_augmentation(ramp_dir):
    from insitu.descriptors import NeighborsMap
    from insitu.training.autolabel import read_snapshot_index

    lab = TOY.label_snapshots(read_snapshot_index(ramp_dir))
    x, y, groups, table = build_ramp_dataset(lab, NeighborsMap(**TOY.descriptor), TOY.classes,
                                             atoms_per_snapshot=50, augment={"amorphous":
                                                                             (0.5, 0.05)})
    assert x.shape == (len(y), 1, 16, 16) and x.dtype == np.float32
    assert len(table) == 6 and len(np.unique(groups)) == 6
    # an augmented copy stays in its snapshot's group: twice the atoms
    assert [r["atoms"] for r in table] == [50] * 3 + [100] * 3
    assert [r["augmented"] for r in table] == [False] * 3 + [True] * 3


def test_train_ramp_model_and_offline_log(ramp_dir, val_dir, tmp_path, capsys):
    out, report = train_ramp_model(TOY, [ramp_dir], tmp_path / "toy.onnx", epochs=2,
                                   atoms_per_snapshot=60, threads=1, val_data=[val_dir])
    clf = Classifier.load(out)
    assert clf.classes == ["liquid", "amorphous"] and report["n_val"] == 6 * 60
    training = clf.metadata["training"]
    assert training["retrain"] == "insitu ramp train toy"
    assert training["training_seeds"] == [1] and training["validation_seeds"] == [2]
    assert [r["role"] for r in training["runs"]] == ["training", "validation"]
    windows = training["runs"][0]["windows"]
    assert windows["t_slope_change"] == pytest.approx(1000, abs=60)
    assert windows["liquid_above"] == pytest.approx(windows["t_slope_change"] + 300)
    assert windows["amorphous_below"] == pytest.approx(windows["t_slope_change"] - 400)
    # the validation atoms are exactly the validation run's snapshots
    assert {r["seed"] for r in training["snapshots"] if r["role"] == "validation"} == {2}
    card = out.with_suffix(".md").read_text()
    assert card.startswith("# toy.onnx")
    assert f"insitu ramp train toy --data {ramp_dir} --val-data {val_dir}" in card
    assert "- training runs (velocity seeds): [1]" in card
    assert "validation runs (velocity seeds, whole runs not used for training): [2]" in card
    assert "| validation | 2 | amorphous |" in card

    log_path = log_from_snapshots(ramp_dir, out, tmp_path / "offline.h5")
    log = read_log(log_path)
    assert len(log) == 22 and log.classes == ["liquid", "amorphous"]
    assert log.attrs["source"].startswith("offline classification")
    assert log.attrs["model_sha256"] == clf.sha256 and log.attrs["descriptor"]["n_grid"] == 16
    np.testing.assert_allclose(sum(log.fractions.values()), 1.0)
    assert log.n_atoms == 108 and np.isnan(log.pressure).all()
    np.testing.assert_array_equal(log_stages(log), [2] * 4 + [3] * 18)
    np.testing.assert_allclose(log.time, log.step * 0.001)
    assert temperature_axis(log)[0][-1] == 100.0
    assert "quench" not in validate_log(log)  # 18 quench rows: too few to validate

    assert cli_main(["ramp", "offline-log", str(ramp_dir), str(out), "-o",
                     str(tmp_path / "cli.h5")]) == 0
    assert "log written to" in capsys.readouterr().out
    np.testing.assert_array_equal(read_log(tmp_path / "cli.h5").counts["liquid"],
                                  log.counts["liquid"])


def test_ramp_train_command_rejects_unknown_system(capsys):
    assert cli_main(["ramp", "train", "fe"]) == 2
    assert "known: ['cuzr', 'ni']" in capsys.readouterr().err


def test_crystal_card_and_helpers(tmp_path):
    assert pct(None) == "n/a" and pct(float("nan")) == "n/a" and pct(0.5) == "50.0"
    assert accuracy_text(None) == "n/a" and accuracy_text(0.97254) == "97.25 %"
    report = {"classes": ["fcc", "bcc"], "arch": "mlp", "n_parameters": 10, "n_train": 5,
              "n_val": 2, "lr": 1e-3, "class_weights": None, "weight_decay": 0.0,
              "batch_size": 8, "epochs": 1, "seed": 0, "seconds": 0.1,
              "history": [{"epoch": 1, "loss": 0.5, "train_accuracy": 0.9}],
              "tables": {"summary": {"overall": 0.9}, "markdown": "TABLE"}}
    provenance = {"materials": [{"name": "Fe", "structure": "bcc", "potential": "Fe.eam",
                                 "pair_style": "eam/fs", "t_melt": 1800.0, "lattice": "bcc",
                                 "a": 2.86, "reps": [5, 5, 5]}], "scale_jitter": 0.1}
    card = write_crystal_card(tmp_path / "m.onnx", report, provenance, {"kind": "steinhardt"},
                              command="insitu train fit --descriptor boo")
    text = card.read_text()
    assert card.name == "m.md" and text.startswith("# m\n")
    assert "| Fe | bcc | `Fe.eam` (eam/fs) | 1800 | 1200 | bcc 2.86 x 5x5x5 |" in text
    assert "```\ninsitu train fit --descriptor boo\n```" in text and "TABLE" in text
    assert "Inference throughput" in text
