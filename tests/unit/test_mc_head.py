"""The MC-dropout head run by numba (insitu.model.mc_head) against a NumPy reference of
ARISE Supp. Eqs. 4-5 and against the graph path; the graph surgery that exposes it
(insitu.training.head_outputs), its refusal when tampered with, and the shipped models."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from insitu.descriptors import NeighborsMap, Steinhardt
from insitu.model import Classifier, ModelError
from insitu.model.mc_dropout import MASK_INPUT, dropout_masks
from insitu.model.mc_head import HEAD_BIAS, HEAD_INPUT, HEAD_WEIGHT
from insitu.resources import model_path
from insitu.testing import lattice, thermal
from insitu.training.export import export_onnx
from insitu.training.head_outputs import expose_head, expose_head_file, hide_head
from insitu.training.nets import build_model

CLASSES = ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"]


def reference_statistics(h, weight, bias, masks):
    """Supp. Eqs. 4-5 straight from their definitions, in float64: per pass
    p_t = softmax(W (m_t * h) + b), mean over the passes, H[mean] - mean of H[p_t]."""
    z = np.einsum("ntu,ku->ntk", masks.astype(np.float64) * h[:, None, :].astype(np.float64),
                  weight.astype(np.float64)) + bias
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    mean = p.mean(1)
    plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -(mean * np.log2(mean)).sum(-1)
    return mean, entropy + plogp.sum(-1).mean(1), entropy


@pytest.fixture(scope="module", params=[0.5, 0.3])
def mlp(request, tmp_path_factory):
    """A small BOO MLP with dropout (rate 0.5: one hash bit per unit; 0.3: 16-bit lanes)
    before its output layer, exported as export_onnx writes every model."""
    torch.manual_seed(3)
    desc = Steinhardt(ls=(4, 6, 8), n_neighbors=12)
    frame = thermal(lattice("bcc", 2.9, 4), 0.25, seed=5)
    x = desc.compute(frame).astype(np.float32)
    model = build_model("mlp-last", desc.feature_shape, 5, features=x).eval()
    for layer in model.modules():
        if isinstance(layer, torch.nn.Dropout):
            layer.p = request.param
    folder = tmp_path_factory.mktemp(f"rate{request.param}")
    path = export_onnx(model, desc, CLASSES, folder / "m.onnx", mc_passes=9, mc_seed=4,
                       mi_threshold=0.05)
    return path, frame, x


def test_exported_one_layer_head_is_exposed_and_matches_numpy(mlp):
    path, _, x = mlp
    clf = Classifier.load(path)
    assert clf.head is not None
    ids = np.arange(1, len(x) + 1) * 7
    mean, mi, entropy = clf.predict_mc(x, ids, step=31)
    h = clf.session.run([HEAD_INPUT], {"features": x})[0]
    masks = dropout_masks(ids, 31, 9, clf.mc.units, clf.mc.rates, clf.mc.seed)
    ref = reference_statistics(h, clf.head.weight, clf.head.bias, masks)
    np.testing.assert_allclose(mean, ref[0], atol=2e-6)
    np.testing.assert_allclose(mi, ref[1], atol=2e-6)
    np.testing.assert_allclose(entropy, ref[2], atol=2e-6)
    assert mi.max() > 1e-3, "the test model should be uncertain somewhere"


def test_numba_head_equals_the_graph_path(mlp):
    path, frame, x = mlp
    fused = Classifier.load(path)
    graph = Classifier.load(path)
    graph.head = None  # the onnxruntime path with its float32 masks
    for step, t in ((0, 9), (17, 2), (5, 1)):
        a = fused.predict_mc(x, frame.ids, step, n_passes=t)
        b = graph.predict_mc(x, frame.ids, step, n_passes=t)
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, atol=1e-6)
        np.testing.assert_array_equal(a[0].argmax(1), b[0].argmax(1))
    novelty = [np.zeros(len(x), np.float32) for _ in range(2)]
    fused.predict_mc(x, frame.ids, 3, novelty_out=novelty[0])
    graph.predict_mc(x, frame.ids, 3, novelty_out=novelty[1])
    np.testing.assert_array_equal(*novelty)
    # any order and batch size: the same numbers per atom
    whole = fused.predict_mc(x, frame.ids, 0)
    perm = np.random.default_rng(1).permutation(len(x))
    fused.batch_size = 5
    shuffled = fused.predict_mc(x[perm], frame.ids[perm], 0)
    for u, v in zip(shuffled, whole):
        np.testing.assert_allclose(u, v[perm], atol=1e-7)


def test_exposing_keeps_every_output_and_refuses_other_heads(mlp, tmp_path):
    path, _, x = mlp
    proto = onnx.load(str(path))
    assert not expose_head(proto), "exported models have it already"
    names = {o.name for o in proto.graph.output}
    assert {HEAD_INPUT, HEAD_WEIGHT, HEAD_BIAS} <= names
    # a model written before: the same graph without the three outputs
    old = tmp_path / "old.onnx"
    hide_head(proto)
    assert not {HEAD_INPUT, HEAD_WEIGHT, HEAD_BIAS} & {o.name for o in proto.graph.output}
    onnx.save(proto, str(old))
    mask = np.full((len(x), 3, 64), 2.0, np.float32)
    mask[:, :, ::3] = 0.0
    feeds = {"features": x, MASK_INPUT: mask}
    keep = [o.name for o in proto.graph.output]
    before = ort.InferenceSession(str(old)).run(keep, feeds)
    assert Classifier.load(old).head is None
    assert expose_head_file(old) and not expose_head_file(old)
    after = ort.InferenceSession(str(old)).run(keep, feeds)
    for u, v in zip(before, after):
        np.testing.assert_array_equal(u, v)
    assert Classifier.load(old).head is not None
    # a Neighbors Map CNN's head (dense, ReLU, BatchNorm, dense) is left alone
    desc = NeighborsMap(cutoff=4.6, n_grid=16)
    frame = thermal(lattice("fcc", 3.6, 3), 0.1, seed=2)
    cnn = build_model("cnn", desc.feature_shape, 5,
                      features=desc.compute(frame).astype(np.float32)).eval()
    cnn_path = export_onnx(cnn, desc, CLASSES, tmp_path / "cnn.onnx", mc_passes=4)
    assert not expose_head(onnx.load(str(cnn_path)))
    assert Classifier.load(cnn_path).head is None


def test_a_head_that_disagrees_with_its_graph_is_refused(mlp, tmp_path):
    path, _, _ = mlp
    proto = onnx.load(str(path))
    for init in proto.graph.initializer:
        if init.name == f"mc_head/{HEAD_WEIGHT}":
            init.CopyFrom(numpy_helper.from_array(1.05 * numpy_helper.to_array(init),
                                                  init.name))
    bad = tmp_path / "tampered.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(ModelError, match="disagrees with the graph"):
        Classifier.load(bad)


def test_shipped_boo_model_runs_its_passes_in_numba():
    boo = Classifier.load(model_path("crystal-boo"))
    assert boo.head is not None and boo.head.weight.shape == (len(boo.classes), boo.mc.n_units)
    assert Classifier.load(model_path("crystal-nm"), screen=False).head is None


def test_cli_exposes_an_older_model_in_place(mlp, tmp_path, capsys):
    from insitu.cli import main

    path, _, x = mlp
    proto = onnx.load(str(path))
    hide_head(proto)
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    assert Classifier.load(old).head is None
    assert main(["train", "head", str(old)]) == 0
    assert "exposed" in capsys.readouterr().out
    assert Classifier.load(old).head is not None
    assert main(["train", "head", str(old)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.onnx"]  # no trial file left
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["train", "head", str(bad)]) == 1
    assert "not a readable ONNX model" in capsys.readouterr().err
    assert bad.read_bytes() == b"not a model"
