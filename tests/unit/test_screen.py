"""The screening network in front of a model (insitu.model.screen): the cascade equals the
two networks run alone and combined atom by atom by the gate; a missing, altered or
mismatched screen is refused with the way out; the gate chosen on validation data keeps
the accuracy within the allowed loss (checked by brute force)."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from insitu.coupling.options import Options
from insitu.descriptors import NeighborsMap
from insitu.model import Classifier, ModelError
from insitu.model.onnx_format import file_sha256
from insitu.model.screen import SCREEN_METADATA, ScreenRule
from insitu.testing import thermal_ni
from insitu.training.export import export_onnx, update_metadata
from insitu.training.screen import attach_screen, choose_min_probability

CLASSES = ["fcc", "bcc", "liquid"]


def _export(path, arch, seed, desc, x, classes=CLASSES):
    """A small net fitted for a few steps to labels from the feature sum (as the
    conftest's fixture models), exported with its MC-dropout head (T = 6)."""
    from insitu.training.nets import build_model

    torch.manual_seed(seed)
    model = build_model(arch, desc.feature_shape, len(classes), features=x)
    xt = torch.as_tensor(x)
    score = xt.reshape(len(xt), -1).sum(1)
    y = torch.bucketize(score, torch.quantile(score, torch.tensor([1 / 3, 2 / 3])))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(120):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), y).backward()
        opt.step()
    return export_onnx(model.eval(), desc, classes, path, mc_passes=6, mc_seed=seed)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(model path, screen path, frame, features): a paper CNN and a lighter net on the
    same 16 x 16 Neighbors Maps, the screen beside the model with a gate at the median of
    its own confidence, so that about half the atoms go on to the model."""
    torch.set_num_threads(1)
    desc = NeighborsMap(cutoff=4.6, n_grid=16)
    frame = thermal_ni(2400.0, n_cells=4, seed=5)
    x = desc.compute(frame).astype(np.float32)
    folder = tmp_path_factory.mktemp("screen")
    model = _export(folder / "m.onnx", "cnn", 3, desc, x)
    screen = _export(folder / "light.onnx", "stride-last", 4, desc, x)
    shutil.copyfile(screen, folder / "m.screen.onnx")
    p = Classifier.load(screen).predict_mc(x, frame.ids, 0)[0].max(1)
    gate = float(np.median(p))
    assert 0.5 < gate < 1.0, "the test screen should be unsure of some atoms"
    rule = ScreenRule("m.screen.onnx", file_sha256(folder / "m.screen.onnx"), gate)
    update_metadata(model, {SCREEN_METADATA: rule.to_metadata()})
    return model, screen, frame, x


@pytest.mark.parametrize("passes", [6, 1])
def test_cascade_is_the_screen_where_sure_and_the_model_elsewhere(pair, passes):
    model, screen, frame, x = pair
    ids, step = frame.ids, 7
    alone = Classifier.load(model, mc_passes=passes, screen=False)
    light = Classifier.load(screen, mc_passes=passes)
    cascade = Classifier.load(model, mc_passes=passes)
    assert cascade.screen is not None and alone.screen is None
    pm, mim, em = alone.predict_mc(x, ids, step)
    ps, mis, es = light.predict_mc(x, ids, step)
    sure = ps.max(1) >= cascade.screen_rule.min_probability
    assert 0.2 < sure.mean() < 0.8
    p, mi, entropy = cascade.predict_mc(x, ids, step)
    np.testing.assert_allclose(p, np.where(sure[:, None], ps, pm), atol=1e-6)
    np.testing.assert_allclose(mi, np.where(sure, mis, mim), atol=1e-6)
    np.testing.assert_allclose(entropy, np.where(sure, es, em), atol=1e-6)
    assert list(cascade.screen_counts) == [sure.sum(), len(x)]
    # the whole classify path (descriptor chunks, labels) gives the same, in any order
    res = cascade.classify(frame, step=step)
    np.testing.assert_allclose(res.probabilities, p, atol=1e-6)
    perm = np.random.default_rng(0).permutation(len(frame))
    shuffled = cascade.classify(frame.subset(perm), step=step, chunk_size=37)
    np.testing.assert_array_equal(shuffled.label_index, res.label_index[perm])
    if passes == 1:
        np.testing.assert_allclose(cascade.predict_proba(x), p, atol=1e-6)


def test_a_missing_altered_or_mismatched_screen_is_refused(pair, tmp_path):
    model, screen, frame, x = pair
    copy = tmp_path / "m.onnx"
    shutil.copyfile(model, copy)
    with pytest.raises(ModelError, match="missing.*screen=False"):
        Classifier.load(copy)
    assert Classifier.load(copy, screen=False).screen is None  # the way out works
    (tmp_path / "m.screen.onnx").write_bytes((model.parent / "m.screen.onnx").read_bytes()
                                             + b"\0")
    with pytest.raises(ModelError, match="sha256 differs"):
        Classifier.load(copy)
    other = _export(tmp_path / "m.screen.onnx", "stride-last", 4, NeighborsMap(
        cutoff=4.6, n_grid=16), x, classes=["fcc", "hcp", "liquid"])
    update_metadata(copy, {SCREEN_METADATA: ScreenRule(
        "m.screen.onnx", file_sha256(other), 0.9).to_metadata()})
    with pytest.raises(ModelError, match="other classes"):
        Classifier.load(copy)
    for bad in ({"model": "../x.onnx", "sha256": "0" * 64, "min_probability": 0.9},
                {"model": "m.screen.onnx", "sha256": "0" * 64, "min_probability": 0.4}):
        update_metadata(copy, {SCREEN_METADATA: bad})
        with pytest.raises(ModelError, match="insitu.screen"):
            Classifier.load(copy)


def test_screen_option_in_situ():
    assert Options.parse("a", ["every=5"]).screen
    assert not Options.parse("a", ["every=5", "screen=no"]).screen


def test_gate_is_the_lowest_that_keeps_the_accuracy():
    rng = np.random.default_rng(3)
    n = 400
    p = np.round(rng.uniform(0.95, 1.0, n), 3)  # ties on purpose
    screen_right = rng.random(n) < 0.3 + 0.7 * (p - 0.95) / 0.05
    model_right = rng.random(n) < 0.97
    eligible = rng.random(n) < 0.9
    for loss in (0.0, 0.01, 0.05):
        gate, acc, frac = choose_min_probability(p, screen_right, model_right, eligible,
                                                 loss, floor=0.96)

        def accuracy(g):
            used = eligible & (p >= g)
            return np.mean(np.where(used, screen_right, model_right)), used.mean()

        ok = [g for g in np.unique(p[eligible]) if g >= 0.96
              and accuracy(g)[0] >= model_right.mean() - loss - 1e-12]
        if not ok:
            assert gate > 1.0 and frac == 0.0
            continue
        assert gate == pytest.approx(min(ok))
        assert (acc, frac) == pytest.approx(accuracy(gate))


def test_attach_screen_calibrates_on_the_validation_split(pair, tmp_path):
    model, screen, frame, x = pair
    fresh = tmp_path / "m.onnx"
    shutil.copyfile(model, fresh)
    update_metadata(fresh, {SCREEN_METADATA: None})
    alone = Classifier.load(fresh)
    labels = alone.predict_proba(x).argmax(1)
    labels[::5] = (labels[::5] + 1) % 3  # the model is not always right
    split = np.ones(len(x), np.int64)
    split[::3] = 0  # training rows: not used for the gate
    data = tmp_path / "d.h5"
    with h5py.File(data, "w") as h5:
        h5["nm"] = x
        h5["nm"].attrs["descriptor"] = json.dumps(alone.metadata["descriptor"])
        h5["label"] = labels
        h5["split"] = split
        h5.attrs["classes"] = json.dumps(CLASSES)
    with pytest.raises(ValueError, match="no gate"):  # a bound no gate can meet
        attach_screen(fresh, screen, data, max_loss=-1.0)
    assert SCREEN_METADATA not in Classifier.load(fresh).metadata
    cal = attach_screen(fresh, screen, data, max_loss=0.01)
    assert (tmp_path / "m.screen.onnx").is_file()
    cascade = Classifier.load(fresh)
    assert cascade.screen_rule.min_probability >= 0.99 and cal["fraction_screened"] > 0
    val = np.flatnonzero(split == 1)
    p = cascade.predict_mc(x[val], val + 1, 0)[0]
    acc = np.mean(p.argmax(1) == labels[val])
    assert acc == pytest.approx(cal["cascade_accuracy"], abs=1e-9)
    assert acc >= cal["model_accuracy"] - 0.01 - 1e-9
    assert cal["atoms"] == len(val)


def test_shipped_crystal_nm_screen_and_cli(tmp_path):
    """The shipped pair: its screen settles a cool fcc crystal, the paper CNN alone agrees;
    ``insitu classify --no-screen`` and a missing screen file are handled by the CLI."""
    from insitu.cli import main
    from insitu.io.lammps_dump import read_lammps_dump
    from insitu.resources import model_path
    from insitu.testing import lattice, thermal, write_dump

    frame = thermal(lattice("fcc", 3.52, 4), 0.06, seed=3)
    shipped = Classifier.load(model_path("crystal-nm"))
    assert shipped.screen is not None and shipped.screen_rule.min_probability >= 0.99
    res = shipped.classify(frame)
    assert shipped.screen_counts[0] > 0.9 * len(frame)
    alone = Classifier.load(model_path("crystal-nm"), screen=False).classify(frame)
    np.testing.assert_array_equal(res.labels, alone.labels)
    assert np.all(res.labels == "fcc")
    dump = write_dump(tmp_path / "in.dump", [frame])
    for extra in ([], ["--no-screen"]):
        out = tmp_path / f"out{len(extra)}.dump"
        assert main(["classify", str(dump), "--model", "crystal-nm", "-o", str(out),
                     "--mc-passes", "1", *extra]) == 0
        assert np.all(read_lammps_dump(out).info["columns"]["label"] == 0)
    lonely = tmp_path / "crystal-nm.onnx"
    shutil.copyfile(model_path("crystal-nm"), lonely)
    assert main(["classify", str(dump), "--model", str(lonely)]) == 2
    assert main(["classify", str(dump), "--model", str(lonely), "--no-screen",
                 "--mc-passes", "1"]) == 0
