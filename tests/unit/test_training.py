"""Training pipeline without LAMMPS: paper CNN size, ONNX export round trip, self-describing
metadata, the split by group, a short fit (the LAMMPS end-to-end run is
tests/integration/test_training_lammps.py)."""

from __future__ import annotations

import json

import numpy as np
import onnx  # noqa: E402,F401
import pytest
import torch  # noqa: E402 - the training extra is part of the test environment

from insitu.descriptors import NeighborsMap, Steinhardt  # noqa: E402
from insitu.model import Classifier  # noqa: E402
from insitu.testing import lattice, thermal  # noqa: E402
from insitu.training.export import export_onnx  # noqa: E402
from insitu.training.nets import NeighborsMapCNN, build_model, count_parameters  # noqa: E402
from insitu.training.train import split_by_group, train_classifier  # noqa: E402


def test_paper_cnn_has_26490_parameters():
    assert count_parameters(NeighborsMapCNN(in_channels=1, n_classes=2)) == 26490
    # generalised to C channels and K classes: only the first conv and the last layer change
    m = NeighborsMapCNN(in_channels=2, n_classes=5)
    assert count_parameters(m) == 26490 + 16 * 25 + 3 * 25
    m.eval()
    assert m(torch.zeros(3, 2, 32, 32)).shape == (3, 5)


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_onnx_round_trip_matches_torch(tmp_path, arch):
    import onnxruntime as ort

    torch.manual_seed(0)
    if arch == "cnn":
        desc = NeighborsMap(cutoff=5.0, n_grid=32)
        shape = (1, 32, 32)
        x = np.random.default_rng(0).random((37,) + shape).astype(np.float32) * 0.1
    else:
        desc = Steinhardt(ls=(4, 6), n_neighbors=12)
        shape = (2,)
        x = np.random.default_rng(0).random((37,) + shape).astype(np.float32)
    model = build_model(arch, shape, 5, features=x).eval()
    path = export_onnx(model, desc, ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"],
                       tmp_path / "m.onnx", threshold=0.6, training_summary={"test": 1},
                       validation_accuracy=0.5)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].name == "features"
    assert sess.get_outputs()[0].name == "probabilities"
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(x)), -1).numpy()
    for n in (1, 5, 37):  # dynamic batch axis
        got = sess.run(None, {"features": x[:n]})[0]
        assert got.dtype == np.float32 and got.shape == (n, 5)
        np.testing.assert_allclose(got, ref[:n], atol=1e-5, rtol=0)
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["insitu.format"] == "1"
    assert json.loads(meta["insitu.classes"])[0] == "fcc"
    assert json.loads(meta["insitu.descriptor"]) == desc.to_metadata()
    assert float(meta["insitu.confidence_threshold"]) == 0.6
    assert json.loads(meta["insitu.training"]) == {"test": 1}
    assert float(meta["insitu.validation_accuracy"]) == 0.5
    assert onnx.load(str(path)).opset_import[0].version >= 17


def test_metadata_alone_is_enough_to_classify(tmp_path):
    desc = NeighborsMap(cutoff=4.0, n_grid=16, gamma=2.0, beta=3.0)
    model = build_model("cnn", desc.feature_shape, 2).eval()
    path = export_onnx(model, desc, ["fcc", "bcc"], tmp_path / "tiny.onnx", threshold=0.4)
    del model, desc
    clf = Classifier.load(path)
    assert clf.classes == ["fcc", "bcc"]
    assert clf.descriptor.to_metadata()["n_grid"] == 16
    assert clf.descriptor.cutoff == 4.0 and clf.confidence_threshold == 0.4
    res = clf.classify(thermal(lattice("fcc", 3.6, 3), 0.05))
    assert res.probabilities.shape == (108, 2)
    np.testing.assert_allclose(res.probabilities.sum(1), 1.0, atol=1e-5)
    assert abs(sum(res.fractions().values()) - 1.0) < 1e-9


def test_split_by_group_never_splits_a_group():
    groups = np.repeat(np.arange(20), 7)
    labels = np.repeat(np.arange(20) % 2, 7)
    val = split_by_group(groups, 0.2, seed=3, labels=labels)
    for g in range(20):
        assert val[groups == g].all() or not val[groups == g].any()
    assert set(labels[val]) == {0, 1} and set(labels[~val]) == {0, 1}


def test_train_classifier_learns_noisy_lattices():
    """No LAMMPS: fcc vs bcc lattices with thermal-like noise, BOO + MLP, split by frame."""
    desc = Steinhardt(ls=(4, 6, 8), n_neighbors=12, averaged=True)
    feats, labels, groups = [], [], []
    for g in range(8):
        for lab, (kind, a) in enumerate((("fcc", 3.6), ("bcc", 2.9))):
            f = thermal(lattice(kind, a, 3), 0.12, seed=g * 2 + lab)
            feats.append(desc.compute(f))
            labels.append(np.full(len(f), lab))
            groups.append(np.full(len(f), g * 2 + lab))
    model, rep = train_classifier(np.concatenate(feats), np.concatenate(labels),
                                  np.concatenate(groups), ["fcc", "bcc"], desc, arch="mlp",
                                  epochs=5, seed=1, progress=False)
    assert rep["val_accuracy"] > 0.9
    assert rep["n_val"] > 0 and rep["n_train"] > 0


def _subnormal_initializers(path) -> int:
    from onnx import numpy_helper

    count = 0
    for init in onnx.load(str(path)).graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype == np.float32:
            count += int(((a != 0) & (np.abs(a) < np.finfo(np.float32).tiny)).sum())
    return count


def test_export_flushes_subnormal_weights(tmp_path):
    """Weights below the smallest normal float32 (dead units after weight decay) are
    written as 0: x86 CPUs compute with subnormals 10-100x slower, and the outputs do not
    change."""
    torch.manual_seed(0)
    desc = Steinhardt(ls=(4, 6, 8), n_neighbors=12)
    x = desc.compute(thermal(lattice("bcc", 2.9, 3), 0.1, seed=1)).astype(np.float32)
    net = build_model("mlp-last", desc.feature_shape, 5, features=x).eval()
    with torch.no_grad():
        net.net[2].weight[:, :7] = 3e-40  # subnormal
        net.net[5].weight[0, :3] = -1e-39
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(x)), -1).numpy()
    path = export_onnx(net, desc, ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"],
                       tmp_path / "m.onnx", mc_passes=4)
    assert _subnormal_initializers(path) == 0
    assert float(net.net[2].weight[0, 0]) == pytest.approx(3e-40)  # the caller's net kept
    np.testing.assert_allclose(Classifier.load(path, mc_passes=1).predict_proba(x), expected,
                               atol=1e-6)


@pytest.mark.parametrize("name", ["crystal-nm", "crystal-boo", "ni-fcc-liquid-amorphous",
                                  "cuzr-liquid-amorphous"])
def test_shipped_models_have_no_subnormal_weights(name):
    from insitu.resources import model_path

    assert _subnormal_initializers(model_path(name)) == 0
