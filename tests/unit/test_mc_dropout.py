"""MC dropout (ARISE Supp. Eqs. 4-5) without LAMMPS: the mutual information against a
NumPy reference, the counter-based masks, the exported graph with its mask input, the
classifier's labels and MI, the metadata checks, the log columns and the CLI column."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from insitu.descriptors import NeighborsMap, Steinhardt
from insitu.io.phase_log import PhaseLog, read_log
from insitu.model import ClassificationResult, Classifier, ModelError
from insitu.model.mc_dropout import MASK_INPUT, dropout_masks, mutual_information, pass_statistics
from insitu.testing import lattice, thermal, write_dump
from insitu.training.export import export_onnx, update_metadata
from insitu.training.mc_calibration import (
    calibrate_mi_threshold,
    reexport_with_mc,
    torch_model_from_onnx,
)
from insitu.training.nets import WithSoftmax, build_model

CLASSES = ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"]


def reference_mi(p: np.ndarray) -> np.ndarray:
    """Supp. Eq. 5 written out term by term with natural logs, converted to bits."""
    n, t, k = p.shape
    out = np.zeros(n)
    for i in range(n):
        mean = [sum(p[i, s, c] for s in range(t)) / t for c in range(k)]
        first = -sum(m * np.log(m) for m in mean if m > 0)
        second = sum(p[i, s, c] * np.log(p[i, s, c]) for s in range(t) for c in range(k)
                     if p[i, s, c] > 0) / t
        out[i] = (first + second) / np.log(2)
    return out


def test_mutual_information_matches_supp_eq5():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(5, 0.3), size=(40, 7))
    p[0] = p[0, :1]                      # all passes agree: MI 0
    p[1] = np.eye(5)[[0, 1, 2, 3, 4, 0, 1]]  # one-hot passes that disagree
    p[2, :, 3] = 0.0                     # zeros (0 log 0 = 0)
    p[2] /= p[2].sum(-1, keepdims=True)
    mi, entropy = mutual_information(p)
    ref = reference_mi(p)
    mean, mi32, _ = pass_statistics(p.astype(np.float32))  # what the classifier uses
    np.testing.assert_allclose(mean, p.mean(1), atol=1e-7)
    assert np.abs(mi32 - ref).max() < 1e-6
    assert np.abs(mi - ref).max() < 1e-6
    assert abs(mi[0]) < 1e-12 and mi.min() >= 0
    mean = p[1].mean(0)
    assert abs(mi[1] - (-(mean * np.log2(mean)).sum())) < 1e-9  # all of H is epistemic
    np.testing.assert_allclose(entropy, [-(m[m > 0] * np.log2(m[m > 0])).sum()
                                         for m in p.mean(1)], atol=1e-12)


def test_masks_are_a_function_of_id_step_pass_and_seed_only():
    ids = np.array([7, 3, 1000003, 42, 5], np.int64)
    m = dropout_masks(ids, 120, 6, [512], [0.5], seed=3)
    assert m.shape == (5, 6, 512) and m.dtype == np.float32
    assert set(np.unique(m)) == {0.0, 2.0}
    perm = np.array([3, 0, 4, 1, 2])
    np.testing.assert_array_equal(dropout_masks(ids[perm], 120, 6, [512], [0.5], 3), m[perm])
    np.testing.assert_array_equal(dropout_masks(ids[2:3], 120, 6, [512], [0.5], 3), m[2:3])
    np.testing.assert_array_equal(dropout_masks(ids, 120, 3, [512], [0.5], 3), m[:, :3])
    for other in (dropout_masks(ids, 121, 6, [512], [0.5], 3),
                  dropout_masks(ids, 120, 6, [512], [0.5], 4)):
        assert 0.4 < np.mean(other != m) < 0.6  # independent draws
    assert 0.4 < np.mean(m[:, 0] != m[:, 1]) < 0.6  # passes differ
    big = dropout_masks(np.arange(4000), 0, 10, [64, 30], [0.1, 0.3], seed=0)
    assert abs(np.mean(big[..., :64] == 0) - 0.1) < 0.005
    assert abs(np.mean(big[..., 64:] == 0) - 0.3) < 0.005
    np.testing.assert_allclose(np.unique(big[..., 64:]), [0.0, 1 / 0.7], rtol=1e-6)
    out = np.empty((5, 6, 512), np.float32)
    assert dropout_masks(ids, 120, 6, [512], [0.5], 3, out) is out
    np.testing.assert_array_equal(out, m)


@pytest.fixture(scope="module", params=["cnn", "stride-last", "mlp", "mlp-last"])
def exported(request, tmp_path_factory):
    """A small net of each architecture exported with the mask input, T = 8 by default."""
    arch = request.param
    torch.manual_seed(1)
    if arch in ("cnn", "stride-last"):
        desc = NeighborsMap(cutoff=4.6, n_grid=16)
        frame = thermal(lattice("fcc", 3.6, 3), 0.12, seed=2)
    else:
        desc = Steinhardt(ls=(4, 6, 8), n_neighbors=12)
        frame = thermal(lattice("bcc", 2.9, 4), 0.12, seed=2)
    x = desc.compute(frame).astype(np.float32)
    model = build_model(arch, desc.feature_shape, 5, features=x).eval()
    folder = tmp_path_factory.mktemp(arch.replace("-", "_"))
    path = export_onnx(model, desc, CLASSES, folder / "m.onnx", mc_passes=8, mc_seed=11,
                       mi_threshold=0.05)
    return model, path, frame, x


def test_graph_mask_input_is_optional_and_passes_match_torch(exported):
    model, path, frame, x = exported
    clf = Classifier.load(path)
    assert clf.mc_passes == 8 and clf.mi_threshold == 0.05 and clf.mc.seed == 11
    masks = clf.mc.masks(np.arange(len(x)), 4, 3)
    passes = clf.session.run(["pass_probabilities"], {"features": x, MASK_INPUT: masks})[0]
    with torch.no_grad():
        trunk = model.trunk(torch.from_numpy(x))
        for t in range(3):
            h, offset = trunk, 0
            for layer in model.head_layers():
                if isinstance(layer, torch.nn.Dropout):
                    w = h.shape[-1]
                    h = h * torch.from_numpy(masks[:, t, offset:offset + w])
                    offset += w
                else:
                    h = layer(h)
            np.testing.assert_allclose(passes[:, t], torch.softmax(h, -1).numpy(), atol=1e-5)
    # without the mask: dropout off, and the same numbers as the deterministic output
    plain = clf.session.run(["pass_probabilities", "probabilities"], {"features": x})
    np.testing.assert_array_equal(plain[0][:, 0], plain[1])


def test_one_pass_reproduces_the_graph_without_mask_exactly(exported, tmp_path):
    """mc_passes=1 runs the operators of a model exported before MC dropout existed."""
    model, path, frame, x = exported
    old = tmp_path / "old.onnx"
    torch.onnx.export(WithSoftmax(model).eval(), (torch.zeros((2,) + x.shape[1:]),),
                      str(old), input_names=["features"], output_names=["probabilities"],
                      dynamic_axes={"features": {0: "batch"}, "probabilities": {0: "batch"}},
                      opset_version=17, dynamo=False)
    import onnxruntime as ort

    before = ort.InferenceSession(str(old), providers=["CPUExecutionProvider"]).run(
        None, {"features": x})[0]
    clf = Classifier.load(path, mc_passes=1)
    result = clf.classify(frame)
    np.testing.assert_array_equal(result.probabilities, before)
    np.testing.assert_array_equal(result.mutual_information, 0.0)
    assert result.mi_threshold is None and result.mc_passes == 1


def test_labels_from_mean_probabilities_and_mi_threshold(exported, tmp_path):
    _, path, frame, x = exported
    mean, mi, entropy = Classifier.load(path).predict_mc(x, frame.ids, 0)
    path = tmp_path / "m.onnx"  # an MI threshold that splits these atoms
    path.write_bytes(exported[1].read_bytes())
    update_metadata(path, {"mc_dropout": dict(Classifier.load(path).metadata["mc_dropout"],
                                              mi_threshold=float(np.median(mi)))})
    clf = Classifier.load(path)
    res = clf.classify(frame)
    np.testing.assert_allclose(res.probabilities, mean, atol=1e-7)
    np.testing.assert_allclose(res.mutual_information, mi, atol=1e-6)
    np.testing.assert_allclose(res.predictive_entropy, entropy, atol=1e-5)
    assert mi.max() > clf.mi_threshold > np.min(mi), "the test model should straddle it"
    expected = np.where((mi > clf.mi_threshold) | (mean.max(1) < clf.confidence_threshold),
                        -1, mean.argmax(1))
    np.testing.assert_array_equal(res.label_index, expected)
    assert np.all(res.uncertain == (mi > clf.mi_threshold))
    # the same atoms in another order, in other chunks: the same numbers per atom
    perm = np.random.default_rng(0).permutation(len(frame))
    shuffled = clf.classify(frame.subset(perm), chunk_size=7)
    np.testing.assert_array_equal(shuffled.label_index, res.label_index[perm])
    np.testing.assert_allclose(shuffled.mutual_information, res.mutual_information[perm],
                               atol=1e-6)
    # another step draws other masks
    later = clf.classify(frame, step=10)
    assert not np.allclose(later.mutual_information, res.mutual_information)


def test_result_without_mc_is_deterministic():
    res = ClassificationResult.from_probabilities(["a", "b"], [[0.9, 0.1], [0.4, 0.6]], 0.5)
    assert res.mc_passes == 1 and not res.uncertain.any()
    np.testing.assert_array_equal(res.mutual_information, 0.0)
    res = ClassificationResult.from_probabilities(["a", "b"], [[0.9, 0.1], [0.4, 0.6]], 0.5,
                                                  mutual_information=[0.3, 0.01],
                                                  mi_threshold=0.2, mc_passes=4)
    assert list(res.labels) == ["unknown", "b"] and list(res.uncertain) == [True, False]


def test_reexport_from_onnx_weights_is_exact(exported, tmp_path):
    """A model exported before MC dropout gets the mask input from its own weights; its
    deterministic output stays bit for bit the same."""
    model, path, frame, x = exported
    if type(model).__name__ == "LightNeighborsMapCNN":  # exported with MC by train fit
        with pytest.raises(ValueError, match="only the paper CNN"):
            torch_model_from_onnx(path)
        return
    rebuilt = torch_model_from_onnx(path)
    for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    proto = onnx.load(str(path))  # strip MC: what an older export looked like
    keep = [e for e in proto.metadata_props if e.key != "insitu.mc_dropout"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    new = reexport_with_mc(old, tmp_path / "new.onnx", passes=5, seed=2)
    a = Classifier.load(path, mc_passes=1).predict_proba(x)
    b = Classifier.load(new, mc_passes=1).predict_proba(x)
    np.testing.assert_array_equal(a, b)
    clf = Classifier.load(new)
    assert clf.mc_passes == 5 and clf.mi_threshold == pytest.approx(np.log2(5))
    cal = calibrate_mi_threshold(new, x, np.arange(len(x)) + 1, percentile=90.0)
    clf = Classifier.load(new)
    assert clf.mi_threshold == pytest.approx(cal["mi_threshold"])
    _, mi, _ = clf.predict_mc(x, np.arange(len(x)) + 1, 0)
    assert abs(np.mean(mi > clf.mi_threshold) - 0.1) < 0.02
    assert clf.metadata["mc_calibration"]["percentile"] == 90.0


def test_bad_mc_metadata_and_requests_are_refused(exported, tmp_path):
    _, path, frame, x = exported
    with pytest.raises(ModelError, match="mc_passes"):
        Classifier.load(path, mc_passes=0)
    bad = tmp_path / "bad.onnx"
    for meta in ({"units": [3], "rates": [0.5], "passes": 4, "seed": 0, "mi_threshold": 0.1},
                 {"units": [512], "rates": [1.5], "passes": 4, "seed": 0, "mi_threshold": 0.1},
                 {"units": [512], "rates": [0.5], "passes": 4, "seed": 0, "mi_threshold": -1},
                 "not an object"):
        bad.write_bytes(path.read_bytes())
        update_metadata(bad, {"mc_dropout": meta})
        with pytest.raises(ModelError, match="mc_dropout"):
            Classifier.load(bad)
    proto = onnx.load(str(path))  # metadata without the graph's mask input
    del proto.graph.input[1:]
    keep = [i for i in proto.graph.initializer if i.name != MASK_INPUT]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(ModelError):
        Classifier.load(plain)


def test_model_without_dropout_head_runs_one_pass(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2))
    path = export_onnx(model, Steinhardt(ls=(4, 6), n_neighbors=12), ["a", "b"],
                       tmp_path / "d.onnx")
    assert "insitu.mc_dropout" not in {e.key for e in onnx.load(str(path)).metadata_props}
    clf = Classifier.load(path)
    assert clf.mc is None and clf.mc_passes == 1 and clf.mi_threshold is None
    with pytest.raises(ModelError, match="no dropout"):
        Classifier.load(path, mc_passes=4)


def test_log_columns_and_old_logs(tmp_path):
    stages = ("total",)
    path = tmp_path / "log.h5"
    log = PhaseLog(path, ["fcc"], stages)
    log.append(5, {"temperature": 300.0}, np.array([3, 1]), 0.8, {"total": 0.1}, {},
               {"mean_mi": 0.02, "uncertain_fraction": 0.25})
    log.append(10, {"temperature": 310.0}, np.array([4, 0]), 0.9, {"total": 0.1})
    data = read_log(path)
    np.testing.assert_allclose(data.mean_mi, [0.02, np.nan])
    np.testing.assert_allclose(data.uncertain_fraction, [0.25, np.nan])
    assert data.select(np.array([True, False])).mean_mi.tolist() == [0.02]
    # a log written before these columns existed: read as NaN, extended when appended to
    import h5py
    with h5py.File(path, "a") as f:
        del f["mean_mi"], f["uncertain_fraction"]
    assert np.isnan(read_log(path).mean_mi).all() and len(read_log(path)) == 2
    log = PhaseLog(path, ["fcc"], stages, append=True)
    log.append(15, {"temperature": 320.0}, np.array([4, 0]), 0.9, {"total": 0.1}, {},
               {"mean_mi": 0.5, "uncertain_fraction": 0.0})
    data = read_log(path)
    np.testing.assert_allclose(data.mean_mi, [np.nan, np.nan, 0.5])
    assert data.step.tolist() == [5, 10, 15]


def test_cli_classify_writes_mi(exported, tmp_path, capsys):
    from insitu.cli import main
    from insitu.io.lammps_dump import iter_lammps_dump

    _, path, frame, _ = exported
    frame.step = 3
    dump = write_dump(tmp_path / "in.dump", frame)
    out = tmp_path / "out.dump"
    assert main(["classify", str(dump), "--model", str(path), "-o", str(out), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = next(iter_lammps_dump(out)).info["columns"]
    expected = Classifier.load(path).classify(frame)  # the dump's step seeds the masks
    np.testing.assert_allclose(written["mi"], expected.mutual_information, atol=1e-5)
    np.testing.assert_array_equal(written["label"], expected.label_index)
    assert rec["mean_mi"] == pytest.approx(float(expected.mutual_information.mean()), abs=1e-6)
    assert main(["classify", str(dump), "--model", str(path), "-o", str(out),
                 "--mc-passes", "1"]) == 0
    assert "mi" not in next(iter_lammps_dump(out)).info["columns"]


def test_attach_option_mc_passes():
    from insitu.coupling.mpi import InsituError
    from insitu.coupling.options import Options

    assert Options.parse("a", ["every=5"]).mc_passes is None
    assert Options.parse("a", ["every=5", "mc_passes=12"]).mc_passes == 12
    with pytest.raises(InsituError, match="mc_passes"):
        Options.parse("a", ["every=5", "mc_passes=0"])


def test_training_skips_atoms_the_descriptor_cannot_describe():
    """NaN features (undescribed atoms) would turn the input scale and every weight into
    NaN; they are left out of training."""
    from insitu.training.train import train_classifier

    rng = np.random.default_rng(0)
    x = rng.random((200, 1, 8, 8)).astype(np.float32)
    y = (x.reshape(200, -1).sum(1) > 32).astype(int)
    x[[3, 50, 120]] = np.nan
    groups = np.arange(200) // 10
    model, report = train_classifier(x, y, groups, ["a", "b"], arch="cnn", epochs=1,
                                     batch_size=32, progress=False, val_mask=groups >= 16)
    assert all(torch.isfinite(p).all() for p in model.state_dict().values()
               if p.dtype.is_floating_point)
    val = np.zeros(200, bool)
    val[report["val_index"]] = True
    described = np.isfinite(x.reshape(200, -1)).all(1)
    assert report["n_train"] == int(np.sum(~val & described)) < int(np.sum(~val))
