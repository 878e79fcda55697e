"""Feature-space novelty (insitu.training.novelty, insitu.model.novelty) without LAMMPS:
the score against Gaussian densities written out in the original feature space, the graph
output against the NumPy score of the torch trunk, the threshold, the labels, and the
checks of models whose graph and metadata disagree."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from insitu.descriptors import NeighborsMap, Steinhardt
from insitu.model import ClassificationResult, Classifier, ModelError
from insitu.model.novelty import NOVELTY_OUTPUT
from insitu.testing import lattice, thermal
from insitu.training.export import export_onnx, update_metadata
from insitu.training.nets import build_model
from insitu.training.novelty import (
    SHRINKAGE,
    add_novelty_output,
    calibrate_novelty,
    fit_class_gaussians,
    novelty_score,
    trunk_features,
    trunk_tensor,
)

CLASSES = ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"]


def reference_novelty(x, labels, queries):
    """min_k [(q - mu_k)^T C_k^-1 (q - mu_k) + ln det C_k] in the original space, C_k the
    class sample covariance plus SHRINKAGE x its mean variance on the diagonal."""
    best = np.full(len(queries), np.inf)
    for k in np.unique(labels):
        xk = x[labels == k]
        cov = np.cov(xk, rowvar=False)
        cov += SHRINKAGE * np.trace(cov) / len(cov) * np.eye(len(cov))
        diff = queries - xk.mean(axis=0)
        maha = np.einsum("ij,ij->i", diff, np.linalg.solve(cov, diff.T).T)
        best = np.minimum(best, maha + np.linalg.slogdet(cov)[1])
    return best


def test_score_is_the_class_gaussian_discriminant():
    rng = np.random.default_rng(0)
    d = 6
    a = rng.normal(0, 1, (400, d)) @ rng.normal(0, 1, (d, d))
    b = rng.normal(5, 0.3, (300, d))
    x = np.concatenate([a, b])
    labels = np.repeat([0, 3], [400, 300])
    queries = np.concatenate([x[::50], rng.normal(20, 1, (5, d))])
    # all components: a rotation, under which the Mahalanobis distances do not change
    stats = fit_class_gaussians(x, labels, n_classes=5, n_components=d)
    assert stats["classes"].tolist() == [0, 3]
    np.testing.assert_allclose(novelty_score(queries, stats),
                               reference_novelty(x, labels, queries), rtol=1e-8, atol=1e-8)
    # far points score far higher than the training points
    scores = novelty_score(queries, stats)
    assert scores[-5:].min() > 10 * np.abs(scores[:-5]).max()
    fewer = fit_class_gaussians(x, labels, n_classes=5, n_components=3)
    assert fewer["components"].shape == (d, 3) and fewer["whiteners"].shape == (2, 3, 3)


@pytest.fixture(scope="module", params=["cnn", "mlp"])
def calibrated(request, tmp_path_factory):
    """A small net exported with its mask input (T = 4), calibrated on two structures."""
    arch = request.param
    torch.manual_seed(3)
    if arch == "cnn":
        desc = NeighborsMap(cutoff=4.6, n_grid=16)
        a, b = lattice("fcc", 3.6, 3), lattice("bcc", 2.9, 4)
    else:
        desc = Steinhardt(ls=(4, 6, 8), n_neighbors=12)
        a, b = lattice("fcc", 3.6, 4), lattice("bcc", 2.9, 5)
    x = np.concatenate([desc.compute(thermal(a, 0.1, seed=s)) for s in range(3)]
                       + [desc.compute(thermal(b, 0.1, seed=s)) for s in range(3)])
    labels = np.repeat([0, 1], [3 * len(a), 3 * len(b)])
    model = build_model(arch, desc.feature_shape, 5, features=x).eval()
    path = export_onnx(model, desc, CLASSES, tmp_path_factory.mktemp(arch) / "m.onnx",
                       mc_passes=4, mc_seed=1)
    val = np.concatenate([desc.compute(thermal(a, 0.1, seed=9)),
                          desc.compute(thermal(b, 0.1, seed=9))])
    meta = calibrate_novelty(path, x, labels, val, percentile=90.0, n_components=8,
                             source="trunk")
    return model, path, desc, x.astype(np.float32), labels, val, meta


def test_graph_output_matches_the_numpy_score_of_the_torch_trunk(calibrated):
    model, path, desc, x, labels, val, meta = calibrated
    with torch.no_grad():
        trunk = model.trunk(torch.as_tensor(x)).reshape(len(x), -1).double().numpy()
    np.testing.assert_allclose(trunk_features(path, x), trunk, rtol=1e-4, atol=1e-5)
    stats = fit_class_gaussians(trunk, labels, 5, n_components=8)
    clf = Classifier.load(path)
    for passes in (1, clf.mc_passes):
        out = np.full(len(x), np.nan, np.float32)
        clf.predict_mc(x, np.arange(len(x)), 0, n_passes=passes, novelty_out=out)
        ref = novelty_score(trunk, stats)
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    assert meta["n_components"] == 8 and meta["classes_fitted"] == ["fcc", "bcc"]
    assert meta["threshold"] == pytest.approx(clf.novelty_threshold)
    assert meta["source"] == "trunk"


def test_input_source_scores_the_descriptor_features(calibrated, tmp_path):
    """source='input' (the default for descriptors other than the Neighbors Map): the
    Gaussians of the features the descriptor gives, before the network."""
    model, path, desc, x, labels, val, meta = calibrated
    copy = tmp_path / "input.onnx"
    copy.write_bytes(path.read_bytes())
    meta = calibrate_novelty(copy, x, labels, val, percentile=90.0, n_components=5,
                             source="input" if desc.kind == "neighbors_map" else None)
    assert meta["source"] == "input"
    flat = x.reshape(len(x), -1).astype(np.float64)
    stats = fit_class_gaussians(flat, labels, 5, n_components=5)
    out = np.zeros(len(x), np.float32)
    Classifier.load(copy).predict_proba(x, novelty_out=out)
    ref = novelty_score(flat, stats)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    with pytest.raises(ValueError, match="source"):
        calibrate_novelty(copy, x, labels, val, source="logits")


def test_atoms_above_the_threshold_are_unknown(calibrated):
    model, path, desc, x, labels, val, meta = calibrated
    clf = Classifier.load(path)
    out = np.zeros(len(val), np.float32)
    clf.predict_proba(val.astype(np.float32), novelty_out=out)
    # the threshold is the 90th percentile of these validation atoms
    assert np.mean(out > clf.novelty_threshold) == pytest.approx(0.1, abs=0.02)
    frame = thermal(lattice("sc", 2.2, 5), 0.3, seed=4)  # neither fcc nor bcc
    for passes in (1, clf.mc_passes):
        res = Classifier.load(path, mc_passes=passes).classify(frame)
        assert res.novelty is not None and res.novelty_threshold == clf.novelty_threshold
        np.testing.assert_array_equal(res.novel, res.novelty > clf.novelty_threshold)
        assert np.all(res.label_index[res.novel] == -1)
        assert res.novel.mean() > 0.9
    assert "unknown" in set(res.labels)


def test_graph_and_metadata_must_agree(calibrated, tmp_path):
    model, path, desc, x, labels, val, meta = calibrated
    proto = onnx.load(str(path))
    assert trunk_tensor(proto) in {i for n in proto.graph.node for i in n.input}
    del proto.graph.output[[o.name for o in proto.graph.output].index(NOVELTY_OUTPUT)]
    no_output = tmp_path / "no_output.onnx"
    onnx.save(proto, str(no_output))
    with pytest.raises(ModelError, match="novelty"):
        Classifier.load(no_output)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(path.read_bytes())
    update_metadata(bad, {"novelty": {"threshold": "high"}})
    with pytest.raises(ModelError, match="threshold"):
        Classifier.load(bad)
    # calibrating again replaces the output instead of adding a second one
    again = onnx.load(str(path))
    stats = fit_class_gaussians(trunk_features(path, x), labels, 5, n_components=4)
    add_novelty_output(again, stats)
    assert [o.name for o in again.graph.output].count(NOVELTY_OUTPUT) == 1
    assert len({i.name for i in again.graph.initializer}) == len(again.graph.initializer)


def test_model_without_dropout_head_has_no_trunk(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2))
    path = export_onnx(model, Steinhardt(ls=(4, 6), n_neighbors=12), ["a", "b"],
                       tmp_path / "d.onnx")
    assert Classifier.load(path).novelty_threshold is None
    with pytest.raises(ValueError, match="MC-dropout head"):
        trunk_tensor(onnx.load(str(path)))


def test_result_labels_with_novelty():
    res = ClassificationResult.from_probabilities(
        ["a", "b"], [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]], 0.5,
        undescribed=np.array([False, False, True, False]),
        novelty=np.array([1.0, 5.0, 9.0, -3.0]), novelty_threshold=2.0)
    assert res.labels.tolist() == ["a", "unknown", "unknown", "b"]
    assert res.novel.tolist() == [False, True, False, False]  # undescribed: not defined
    assert np.isnan(res.novelty[2]) and res.novelty[3] == -3.0
    plain = ClassificationResult.from_probabilities(["a", "b"], [[0.9, 0.1]], 0.5)
    assert plain.novelty is None and plain.novel.tolist() == [False]
