"""Honest validation of the crystal models (issue 11): features of other descriptor code are
refused, the validation index is the held-out split, validation and held-out runs share no
seed or trajectory with training runs, card tables hold no training atom, and the shipped
inputs and examples run no training trajectory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from insitu.descriptors import NeighborsMap, Steinhardt
from insitu.descriptors import fingerprint as fpmod
from insitu.descriptors.fingerprint import (
    DescriptorMismatch,
    check_fingerprint,
    descriptor_fingerprint,
)
from insitu.training.datagen import BOO_PARAMS, CLASSES
from insitu.training.transition_runs import (
    HELDOUT_ELEMENTS,
    QUENCH_END,
    SEED_ORDER,
    TRAIN_ELEMENTS,
    TRANSITION_MATERIALS,
    assert_disjoint_runs,
    element_lists,
    plan_runs,
    run_seed,
)

ROOT = Path(__file__).resolve().parents[2]


def test_fingerprint_accepts_the_same_code_and_refuses_other_parameters():
    boo = Steinhardt(**BOO_PARAMS)
    fp = descriptor_fingerprint(boo)
    check_fingerprint(json.loads(json.dumps(fp)), Steinhardt(**BOO_PARAMS), "dataset")
    with pytest.raises(DescriptorMismatch, match="parameters"):
        check_fingerprint(fp, Steinhardt(**{**BOO_PARAMS, "n_neighbors": 8}), "dataset")
    with pytest.raises(DescriptorMismatch, match="fingerprint"):
        check_fingerprint(None, boo, "dataset")


def test_fingerprint_refuses_a_version_bump(monkeypatch):
    nm = NeighborsMap(cutoff=6.5, n_grid=16)
    fp = descriptor_fingerprint(nm)
    monkeypatch.setitem(fpmod.DESCRIPTOR_VERSION, "neighbors_map",
                        fpmod.DESCRIPTOR_VERSION["neighbors_map"] + 1)
    with pytest.raises(DescriptorMismatch, match="version"):
        check_fingerprint(fp, nm, "model")


def test_fingerprint_probe_sees_changed_semantics_but_not_rounding():
    boo = Steinhardt(**BOO_PARAMS)
    fp = descriptor_fingerprint(boo)
    rounding = dict(fp, probe=[v * (1 + 1e-7) for v in fp["probe"]])
    check_fingerprint(rounding, boo, "dataset")
    changed = dict(fp, probe=[v * (1 + 1e-2) for v in fp["probe"]])
    with pytest.raises(DescriptorMismatch, match="semantics"):
        check_fingerprint(changed, boo, "dataset")
    # a real change of semantics (another neighbour rule) moves the probe
    other = descriptor_fingerprint(Steinhardt(**{**BOO_PARAMS, "n_neighbors": 10}))
    with pytest.raises(DescriptorMismatch, match="semantics"):
        check_fingerprint(dict(fp, probe=other["probe"]), boo, "dataset")


def _roles():
    roles = {n: ("train", "val") for n in TRAIN_ELEMENTS}
    roles.update({n: ("heldout",) for n in HELDOUT_ELEMENTS})
    return roles


def test_validation_runs_share_no_seed_or_trajectory_with_training(tmp_path):
    mats = [TRANSITION_MATERIALS[n] for n in (*TRAIN_ELEMENTS, *HELDOUT_ELEMENTS)]
    plan = plan_runs(mats, tmp_path, _roles())
    runs = [r for r, _ in plan]
    assert_disjoint_runs(runs)
    train = {r.seed for r in runs if r.role == "train"}
    others = {r.seed for r in runs if r.role != "train"}
    assert train and others and not train & others
    assert len({r.dump for r in runs}) == len(runs)
    assert len(HELDOUT_ELEMENTS) >= 2 and not set(HELDOUT_ELEMENTS) & set(TRAIN_ELEMENTS)
    assert {r.material for r in runs if r.role in ("train", "val")}.isdisjoint(
        HELDOUT_ELEMENTS)
    for run, script in plan:  # each input uses its own seed
        assert f"create {2 * run.t0 if run.kind == 'heat' else ''}".strip() in script
        assert re.search(rf"velocity all create \S+ {run.seed} ", script)


def test_a_copied_training_run_is_caught(tmp_path):
    mats = [TRANSITION_MATERIALS["Al"], TRANSITION_MATERIALS["Ni"]]
    runs = [r.__dict__ for r, _ in plan_runs(mats, tmp_path, {"Al": ("train", "val"),
                                                              "Ni": ("heldout",)})]
    assert_disjoint_runs(runs)
    val = next(r for r in runs if r["role"] == "val")
    train = next(r for r in runs if r["role"] == "train")
    with pytest.raises(ValueError, match="seed"):
        assert_disjoint_runs(runs + [dict(val, seed=train["seed"], name="x", dump="y")])
    with pytest.raises(ValueError, match="dump"):
        assert_disjoint_runs(runs + [dict(val, seed=1, name="x", dump=train["dump"])])
    with pytest.raises(ValueError, match="held-out"):
        assert_disjoint_runs(runs + [dict(train, material="Ni", seed=2, name="z", dump="z")])


def test_run_seeds_of_the_shipped_cards_do_not_move():
    """Every run in the shipped crystal cards' evidence tables keeps its velocity seed (a
    material added to the list must not renumber the others: the datasets would change)."""
    checked = 0
    for card in ("crystal-nm", "crystal-boo"):
        text = (ROOT / "models" / f"{card}.md").read_text()
        for name, mat, kind, role, seed in re.findall(
                r"^\| ((\w+)_(heat|quench)_(train|val|heldout)_s(\d+)) \|", text, re.M):
            assert run_seed(mat, kind, role) == int(seed), name
            checked += 1
    assert checked >= 2 * 30
    assert sorted(SEED_ORDER) == sorted(TRANSITION_MATERIALS)  # every material has its place


def test_quench_ends_where_the_material_says(tmp_path):
    """Ti's quench stops at its QUENCH_END fraction of T_m; the others at 0.55 T_m, and its
    LAMMPS input ramps to that temperature."""
    mats = [TRANSITION_MATERIALS[n] for n in ("Ti", "Al")]
    plan = {run.name: (run, script) for run, script in plan_runs(mats, tmp_path, ("train",))}
    ti, ti_script = plan[f"Ti_quench_train_s{run_seed('Ti', 'quench', 'train')}"]
    al, _ = plan[f"Al_quench_train_s{run_seed('Al', 'quench', 'train')}"]
    assert QUENCH_END["Ti"] > 0.55
    assert ti.t1 == round(QUENCH_END["Ti"] * TRANSITION_MATERIALS["Ti"].t_melt)
    assert f"temp {ti.t0} {ti.t1} " in ti_script
    assert al.t1 == round(0.55 * TRANSITION_MATERIALS["Al"].t_melt)


def test_element_lists_of_the_transition_data():
    assert element_lists() == (TRAIN_ELEMENTS, HELDOUT_ELEMENTS)
    train, held = element_lists("Al,SiT2", "Ni,SiT3,SiE")
    assert train == ("Al", "SiT2") and held == ("Ni", "SiT3", "SiE")
    with pytest.raises(ValueError, match="unknown element"):
        element_lists("Al,Xx")
    with pytest.raises(ValueError, match="both trained on and held out"):
        element_lists("Al,Ni", "Ni")
    with pytest.raises(ValueError, match="no training"):
        element_lists(" ", None)


def test_card_data_command_names_the_elements_it_was_made_with():
    from insitu.training.transition_report import element_arguments

    default = {"train_elements": list(TRAIN_ELEMENTS),
               "heldout_elements": list(HELDOUT_ELEMENTS)}
    assert element_arguments(default) == ""
    wide = {"train_elements": [*TRAIN_ELEMENTS, "SiT2"],
            "heldout_elements": [*HELDOUT_ELEMENTS, "SiT3", "SiE"]}
    args = element_arguments(wide)
    assert f"--materials {','.join(wide['train_elements'])}" in args
    assert f"--heldout {','.join(wide['heldout_elements'])}" in args
    assert element_lists(args.split()[1], args.split()[3]) == (
        tuple(wide["train_elements"]), tuple(wide["heldout_elements"]))


def _seeds_in(text: str) -> set[int]:
    pats = (r"variable\s+seed\s+index\s+(\d+)", r"velocity\s+\S+\s+create\s+\S+\s+(\d+)",
            r"-var\s+seed\s+\"?(\d+)", r"create_atoms\s+\d+\s+random\s+\S+\s+(\d+)")
    return {int(m) for p in pats for m in re.findall(p, text)}


def test_inputs_and_examples_run_no_training_trajectory():
    files = list((ROOT / "lammps_inputs").glob("*.lmp")) + [
        p for p in (ROOT / "examples").rglob("*") if p.suffix in (".lmp", ".sh")]
    seeds = set().union(*(_seeds_in(p.read_text()) for p in files))
    assert 4928459 in seeds  # the quickstart / Ni ramp seed is found
    training = {run_seed(n, k, "train") for n in TRAIN_ELEMENTS for k in ("heat", "quench")}
    assert not seeds & training
    # the quickstart's element and potential are held out of the crystal models
    quick = (ROOT / "examples/quickstart/in.quickstart.lmp").read_text()
    trained_pots = {TRANSITION_MATERIALS[n].potential for n in TRAIN_ELEMENTS}
    assert not any(p in quick for p in trained_pots)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small BOO dataset (training split 0, validation split 1) and a held-out file,
    with fingerprints, and a model fitted on it."""
    from insitu.training.train import fit_from_hdf5
    from insitu.training.transition_dataset import heldout_path

    tmp = tmp_path_factory.mktemp("honesty")
    boo = Steinhardt(**BOO_PARAMS)
    rng = np.random.default_rng(0)

    def write(path, n, split, role):
        label = rng.integers(0, len(CLASSES), n)
        feats = (rng.normal(0, 0.05, (n, boo.n_features)) + label[:, None] * 0.2).astype(
            np.float32)
        with h5py.File(path, "w") as h5:
            ds = h5.create_dataset("boo", data=feats)
            ds.attrs["descriptor"] = json.dumps(boo.to_metadata())
            ds.attrs["fingerprint"] = json.dumps(descriptor_fingerprint(boo))
            cols = dict(label=label, group=np.arange(n) // 20, split=split, role=role,
                        kind=np.zeros(n, int), material=np.zeros(n, int),
                        t_over_tm=rng.uniform(0, 1.3, n), missing_fraction=np.zeros(n),
                        cna=np.full(n, 5))
            for k, v in cols.items():
                h5.create_dataset(k, data=np.broadcast_to(v, (n,)))
            h5.attrs["classes"] = json.dumps(CLASSES)
            h5.attrs["materials"] = json.dumps(["Al"])
            h5.attrs["provenance"] = json.dumps({"protocol": "transition"})

    main = tmp / "t.h5"
    split = (np.arange(400) // 20) % 3 == 0
    write(main, 400, split.astype(int), split.astype(int))
    write(heldout_path(main), 60, np.ones(60, int), np.full(60, 2))
    out, report = fit_from_hdf5(main, "boo", out=tmp / "m.onnx", epochs=1, seed=0,
                                threads=1, card=False, progress=False)
    return main, out, report, split


def test_validation_index_is_the_heldout_split(synthetic):
    main, out, report, split = synthetic
    assert np.array_equal(report["val_index"], np.nonzero(split)[0])
    from insitu.model import Classifier
    stored = Classifier.load(out).metadata["training"]["descriptor_fingerprint"]
    check_fingerprint(stored, Steinhardt(**BOO_PARAMS), "model")


def test_card_rows_hold_no_training_atom(synthetic):
    from insitu.training.transition_report import evaluation_rows

    main, out, report, split = synthetic
    rows = evaluation_rows(out, main)
    assert len(rows["truth"]) == int(split.sum()) + 60
    assert (rows["role"] != 0).all()
    with pytest.raises(ValueError, match="training rows"):
        evaluation_rows(out, main, index_main=np.arange(20, 25))  # training rows


def test_a_model_of_other_descriptor_code_is_refused(synthetic, tmp_path):
    from insitu.training.report import read_dataset

    main, out, report, split = synthetic
    import shutil
    bad = tmp_path / "bad.h5"
    shutil.copy(main, bad)
    with h5py.File(bad, "a") as h5:
        fp = json.loads(h5["boo"].attrs["fingerprint"])
        fp["version"] = -1
        h5["boo"].attrs["fingerprint"] = json.dumps(fp)
    from insitu.model import Classifier
    clf = Classifier.load(out)
    read_dataset(main, clf)
    with pytest.raises(DescriptorMismatch, match="version"):
        read_dataset(bad, clf)


def _heating(n=30, jump=22, latent=0.1, seed=0):
    rng = np.random.default_rng(seed)
    temp = np.linspace(100, 1500, n)
    pe = -3.4 + 1.6e-4 * temp + 2e-8 * temp**2 + rng.normal(0, 0.002, n)
    pe[jump:] += latent
    msd = np.where(np.arange(n) < jump, 0.1 + 1e-4 * temp, 5.0)
    return temp, pe, msd


def test_heating_labels_come_from_the_run_not_the_temperature():
    from insitu.training.transition_labels import label_heating

    nan = np.full(30, np.nan)
    for jump in (15, 22):  # the same temperatures, melting at another point of the ramp
        temp, pe, msd = _heating(jump=jump)
        labels, info = label_heating(temp, pe, msd, "fcc", nan, nan, 1000.0)
        assert info["jump_index"] == jump
        assert all(lab == "fcc" for lab in labels[:jump - 3])
        assert all(lab is None for lab in labels[jump - 2:jump + 1])  # around the jump
        assert labels[-1] == "liquid"
    temp, pe, msd = _heating()
    msd[5] = 3.0  # a diffusive snapshot on the crystal branch is not called crystal
    labels, _ = label_heating(temp, pe, msd, "fcc", nan, nan, 1000.0)
    assert labels[5] is None and labels[4] == "fcc"
    own, other = np.ones(30), np.zeros(30)
    own[6], other[6] = 0.2, 0.7  # CNA: transformed into another crystal
    labels, _ = label_heating(temp, pe, msd, "fcc", own, other, 1000.0)
    assert labels[6] is None


def test_quench_labels_stop_at_crystallisation_and_at_the_glass():
    from insitu.training.transition_labels import label_quench

    n = 30
    temp = np.linspace(1400, 550, n)
    pe = -3.1 - 2e-4 * (1400 - temp)
    msd = np.full(n, 5.0)
    labels, info = label_quench(temp, pe, msd, np.zeros(n), 1000.0, 0.1)
    assert info["crystallisation_index"] is None
    assert all(lab == "liquid" for lab in labels)
    pe2 = pe.copy()
    pe2[20:] -= 0.08  # crystallises at snapshot 20: latent heat released
    labels, info = label_quench(temp, pe2, msd, np.zeros(n), 1000.0, 0.1)
    assert info["crystallisation_index"] == 20
    assert all(lab is None for lab in labels[18:]) and labels[17] == "liquid"
    cna = np.zeros(n)
    cna[25:] = 0.5  # crystalline by CNA
    labels, info = label_quench(temp, pe, msd, cna, 1000.0, 0.1)
    assert info["crystallisation_index"] == 25
    msd2 = msd.copy()
    msd2[27:] = 0.2  # not diffusive: a glass, not a liquid sample
    labels, _ = label_quench(temp, pe, msd2, np.zeros(n), 1000.0, 0.1)
    assert labels[27] is None and labels[26] == "liquid"


def test_cli_refuses_a_dataset_without_fingerprint(synthetic, tmp_path, capsys):
    import shutil

    from insitu.cli import main

    main_path, out, report, split = synthetic
    old = tmp_path / "old.h5"
    shutil.copy(main_path, old)
    with h5py.File(old, "a") as h5:
        del h5["boo"].attrs["fingerprint"]
    assert main(["train", "fit", "--data", str(old), "--descriptor", "boo", "--out",
                 str(tmp_path / "m.onnx"), "--epochs", "1", "--quiet"]) == 2
    assert "fingerprint" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    assert main(["train", "card", str(out), "--data", str(old)]) == 2


def test_cli_fit_class_weights_reach_the_loss_and_the_model(synthetic, tmp_path):
    """``insitu train fit --class-weights none`` (the shipped crystal-nm: unweighted
    cross-entropy) and the default ``balanced`` are recorded in the model's metadata."""
    from insitu.cli import main
    from insitu.model import Classifier

    main_path, out, report, split = synthetic
    for flag, stored in (("none", None), ("balanced", "balanced")):
        model = tmp_path / f"{flag}.onnx"
        assert main(["train", "fit", "--data", str(main_path), "--descriptor", "boo",
                     "--out", str(model), "--epochs", "1", "--threads", "1",
                     "--class-weights", flag, "--no-card", "--quiet"]) == 0
        clf = Classifier.load(model)
        assert clf.metadata["training"]["class_weights"] == stored
        # train fit gives the q-bar MLP the novelty of its input features
        assert clf.novelty_threshold is not None
        assert clf.metadata["novelty"]["source"] == "input"


def test_cli_mc_recalibrates_mi_and_novelty(synthetic, tmp_path):
    """``insitu train mc MODEL --data DATASET`` re-exports the model from its weights and
    sets both thresholds again (the old novelty output is not carried over)."""
    from insitu.cli import main
    from insitu.model import Classifier

    main_path, out, report, split = synthetic
    model = tmp_path / "m.onnx"
    assert main(["train", "fit", "--data", str(main_path), "--descriptor", "boo", "--out",
                 str(model), "--epochs", "1", "--threads", "1", "--no-card", "--quiet"]) == 0
    for percentile in (95, 90):  # a second calibration replaces the first
        assert main(["train", "mc", str(model), "--data", str(main_path), "--percentile",
                     str(percentile)]) == 0
        clf = Classifier.load(model)
        assert clf.metadata["mc_calibration"]["percentile"] == percentile
        assert clf.novelty_threshold is not None
        if percentile == 95:
            first = clf.metadata["novelty"]
    assert clf.metadata["novelty"]["threshold"] == pytest.approx(first["threshold"], rel=1e-4)
    with h5py.File(main_path, "r") as h5:  # fitted on the training split alone
        assert first["train_atoms"] == int((h5["split"][...] == 0).sum())
