"""Knowledge distillation (``insitu train fit --teacher``, insitu/training/distill.py):
the loss against a NumPy formula, a student pulled to the teacher's soft labels, the
teacher run on training atoms only and recorded, and teachers that do not fit refused.
Tiny synthetic data, no LAMMPS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from insitu.descriptors import NeighborsMap, Steinhardt
from insitu.descriptors.fingerprint import DescriptorMismatch, descriptor_fingerprint
from insitu.model import Classifier
from insitu.training.distill import (
    Distillation,
    distill_arguments,
    distill_text,
    distillation_loss,
    load_teacher_targets,
)
from insitu.training.export import export_onnx
from insitu.training.nets import build_model
from insitu.training.train import teacher_targets, train_classifier, training_summary


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("alpha,tau", [(0.0, 1.0), (0.7, 2.0), (1.0, 4.0), (0.3, 0.5)])
def test_loss_matches_numpy_formula(alpha, tau):
    """(1 - A) CE + A TAU^2 KL(softmax(t/TAU) || softmax(s/TAU)), batch mean."""
    rng = np.random.default_rng(3)
    s, t = rng.normal(size=(9, 4)) * 2, rng.normal(size=(9, 4)) * 3
    y = rng.integers(0, 4, 9)
    ce = -_log_softmax(s)[np.arange(9), y].mean()
    lt, ls = _log_softmax(t / tau), _log_softmax(s / tau)
    kl = (np.exp(lt) * (lt - ls)).sum(axis=1).mean()
    expected = (1 - alpha) * ce + alpha * tau ** 2 * kl
    soft = torch.log_softmax(torch.from_numpy(t / tau), dim=1)
    got = distillation_loss(torch.from_numpy(s), torch.from_numpy(y), soft, alpha, tau)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    # the Distillation object gives the same soft targets from the teacher's logits
    d = Distillation(t.astype(np.float32), alpha=alpha, temperature=tau)
    np.testing.assert_allclose(d.soft_log_targets(np.arange(9)).numpy(), lt, atol=1e-5)


def test_bad_alpha_or_temperature_refused():
    with pytest.raises(ValueError, match="alpha"):
        Distillation(np.zeros((2, 2)), alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        Distillation(np.zeros((2, 2)), temperature=0.0)


def _student_p1(alpha: float):
    """Train a tiny MLP where every hard label is class 0 and the teacher says
    p = (0.6, 0.4); return the student's mean p(class 1) on the validation atoms."""
    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=(n, 2)).astype(np.float32)
    labels = np.zeros(n, np.int64)
    groups = np.arange(n) // 20
    val = groups >= 25
    logits = np.tile(np.log([0.6, 0.4]).astype(np.float32), (n, 1))
    logits[val] = np.nan  # no soft target for a validation atom: asking for one raises
    d = Distillation(logits, alpha=alpha, temperature=1.0, info={"teacher": "t.onnx"})
    model, rep = train_classifier(x, labels, groups, ["fcc", "bcc"], arch="mlp", epochs=25,
                                  seed=0, val_mask=val, batch_size=64, lr=1e-2,
                                  progress=False, distill=d)
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(x[val])), 1).numpy()
    return float(p[:, 1].mean()), rep


def test_alpha_one_student_learns_teacher_soft_labels():
    p1, rep = _student_p1(1.0)
    assert abs(p1 - 0.4) < 0.08  # the teacher's soft label, not the hard label 0
    p1_hard, _ = _student_p1(0.0)
    assert p1_hard < 0.05  # without the teacher term: the hard labels
    summary = training_summary(rep)
    assert summary["distillation"]["teacher"] == "t.onnx"
    assert summary["distillation"]["alpha"] == 1.0
    assert summary["distillation"]["temperature"] == 1.0


def _teacher(tmp_path, desc, classes, seed=0):
    torch.manual_seed(seed)
    model = build_model("cnn", desc.feature_shape, len(classes)).eval()
    return export_onnx(model, desc, classes, tmp_path / "teacher.onnx", training_summary={
        "descriptor_fingerprint": descriptor_fingerprint(desc)})


def test_teacher_runs_on_training_atoms_only_and_is_recorded(tmp_path):
    desc = NeighborsMap(cutoff=4.0, n_grid=16)
    path = _teacher(tmp_path, desc, ["fcc", "bcc", "liquid"])
    rng = np.random.default_rng(1)
    feats = rng.random((40,) + desc.feature_shape).astype(np.float32)
    feats[5] = np.nan  # an undescribed atom gets no soft target
    train = np.arange(40) < 30
    d = teacher_targets(path, feats, train, ["fcc", "bcc", "liquid"], desc, alpha=0.5,
                        temperature=3.0)
    rows = np.nonzero(train)[0]
    rows = rows[rows != 5]
    assert np.isfinite(d.teacher_logits[rows]).all()
    assert np.isnan(d.teacher_logits[~train]).all() and np.isnan(d.teacher_logits[5]).all()
    proba = Classifier.load(path, mc_passes=1).predict_proba(feats[rows])
    np.testing.assert_allclose(np.exp(d.teacher_logits[rows]), proba, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="validation"):
        d.soft_log_targets(np.array([31]))
    meta = d.metadata()
    assert meta["teacher"] == "teacher.onnx" and meta["teacher_atoms"] == len(rows)
    assert meta["teacher_sha256"] == Classifier.load(path).sha256
    assert meta["alpha"] == 0.5 and meta["temperature"] == 3.0
    tr = {"distillation": meta}
    assert "--teacher" in distill_arguments(tr) and "A = 0.5" in distill_text(tr)
    assert distill_text({}) == "" and distill_arguments({}) == ""


def test_teacher_with_other_classes_refused(tmp_path):
    desc = NeighborsMap(cutoff=4.0, n_grid=16)
    path = _teacher(tmp_path, desc, ["fcc", "bcc"])
    feats = np.zeros((4,) + desc.feature_shape, np.float32)
    with pytest.raises(ValueError, match="same classes in the same order"):
        load_teacher_targets(path, feats, np.arange(4), ["bcc", "fcc"], desc)
    with pytest.raises(ValueError, match="same classes"):
        load_teacher_targets(path, feats, np.arange(4), ["fcc", "bcc", "liquid"], desc)


def test_teacher_of_other_descriptor_refused(tmp_path):
    path = _teacher(tmp_path, NeighborsMap(cutoff=4.0, n_grid=16), ["fcc", "bcc"])
    other = NeighborsMap(cutoff=5.0, n_grid=16)
    feats = np.zeros((4,) + other.feature_shape, np.float32)
    with pytest.raises(DescriptorMismatch):
        load_teacher_targets(path, feats, np.arange(4), ["fcc", "bcc"], other)
    boo = Steinhardt(ls=(4, 6), n_neighbors=12)
    with pytest.raises(DescriptorMismatch):
        load_teacher_targets(path, np.zeros((4, 2), np.float32), np.arange(4), ["fcc", "bcc"],
                             boo)
