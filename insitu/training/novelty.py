"""Feature-space novelty of an exported model: is an atom's environment like the training
atoms' at all?

MC dropout in the head (ARISE Supp. Eq. 5, :mod:`insitu.model.mc_dropout`) flags grain
boundaries and defects, but a network maps some environments it never saw confidently
onto a class, every dropout sub-network agreeing (uniformly random points come out
``cubic_diamond`` from the paper CNN with MI ~0): the head extrapolates, and its
sub-networks extrapolate alike. Their trunk features, however, lie far from every
training class. Here one Gaussian per class is fitted to the trunk features of the
training atoms (the input of the dropout head), projected on their first principal
components, with a shrunk covariance of its own (Gaussian discriminant analysis of the
features, as in Mukhoti et al., "Deep Deterministic Uncertainty", CVPR 2023), and the
graph gains an output ``novelty``:

    novelty(x) = min_k [ (z - m_k)^T S_k^-1 (z - m_k) + ln det S_k ],   z = P^T (f(x) - mu)

(-2 ln of the largest class-conditional density, up to a constant). For a
Neighbors Map CNN, f(x) are the trunk features; for the q-bar MLP, whose trunk maps simple
cubic onto fcc, the descriptor's own features (``source='input'``: simple cubic is then
100 % novel, and uniformly random points, liquid-like in q-bar space, 90-94 % through the
spread of their nearest-neighbour distances). An atom is
``unknown`` when its novelty exceeds the threshold stored in the metadata, the
:data:`NOVELTY_PERCENTILE` th percentile of the validation atoms' (so about 0.1 % of
them are flagged). No torch: NumPy and the ONNX graph only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from insitu.descriptors import described_mask
from insitu.model.mc_dropout import MASK_INPUT
from insitu.model.novelty import NOVELTY_OUTPUT

__all__ = ["NOVELTY_PERCENTILE", "N_COMPONENTS", "SHRINKAGE", "default_source", "trunk_tensor",
           "trunk_features", "fit_class_gaussians", "novelty_score", "add_novelty_output",
           "calibrate_novelty", "calibrate_novelty_on_dataset"]

NOVELTY_PERCENTILE = 99.9
"""Percentile of the validation atoms' novelty used as the threshold."""
N_COMPONENTS = 64
"""Principal components of the trunk features kept (all of them when there are fewer):
the score then costs ~2 % of a paper-CNN call."""
SHRINKAGE = 1e-3
"""Each class covariance plus SHRINKAGE x its mean variance on the diagonal (classes with
directions of ~0 variance, e.g. a perfect crystal's, stay invertible)."""
_PREFIX = "novelty/"


def trunk_tensor(proto) -> str:
    """Name of the tensor that feeds the MC-dropout head (the trunk's output) in an
    exported graph: the input of the ``Unsqueeze`` whose output is multiplied by the
    dropout mask (or a slice of it). Raises ValueError for a graph without one."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    mask_like = {MASK_INPUT}
    for node in proto.graph.node:  # slices of the mask for heads with several dropouts
        if node.op_type == "Slice" and node.input[0] in mask_like:
            mask_like.add(node.output[0])
    for node in proto.graph.node:
        if node.op_type == "Mul" and mask_like & set(node.input):
            other = [i for i in node.input if i not in mask_like]
            source = producer.get(other[0]) if other else None
            if source is not None and source.op_type == "Unsqueeze":
                return source.input[0]
    raise ValueError("the graph has no MC-dropout head (no Unsqueeze x dropout_mask): "
                     "export the model with its dropout-mask input first (`insitu train mc`)")


def default_source(descriptor_kind: str) -> str:
    """``'trunk'`` for Neighbors Map CNNs, ``'input'`` (the descriptor's features) else."""
    return "trunk" if descriptor_kind == "neighbors_map" else "input"


def trunk_features(model_path: str | Path, features: np.ndarray,
                   batch_size: int = 1024, source: str = "trunk") -> np.ndarray:
    """(N, D) float64 trunk features of ``features`` (deterministic: no dropout), or with
    ``source='input'`` the features themselves, flattened."""
    import onnx

    from insitu.model.onnx_format import open_session

    if source == "input":
        return np.asarray(features, np.float64).reshape(len(features), -1)
    proto = onnx.load(str(model_path))
    name = trunk_tensor(proto)
    proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    tmp = Path(model_path).with_suffix(".trunk.tmp.onnx")
    onnx.save(proto, str(tmp))
    try:
        session = open_session(tmp)  # the mask input has a default: the trunk needs none
        first = session.get_inputs()[0].name
        x = np.asarray(features, np.float32)
        out = [session.run([name], {first: x[s:s + batch_size]})[0]
               for s in range(0, len(x), batch_size)]
    finally:
        tmp.unlink(missing_ok=True)
    return np.concatenate(out).reshape(len(x), -1).astype(np.float64)


def fit_class_gaussians(embeddings: np.ndarray, labels: np.ndarray, n_classes: int,
                        n_components: int = N_COMPONENTS,
                        shrinkage: float = SHRINKAGE) -> dict:
    """Per-class Gaussians of the trunk features ``embeddings`` (N, D) of training atoms
    with ``labels`` (N,) in 0..n_classes-1, in the space of their first ``n_components``
    principal components. Returns ``mean`` (D,), ``components`` P (D, d), and per fitted
    class ``class_means`` m_k (K', d), ``whiteners`` L_k (K', d, d) with
    L_k L_k^T = S_k^-1, ``log_dets`` ln det S_k (K',), ``classes`` (K',) indices."""
    x = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:min(n_components, len(vt))].T
    z = (x - mean) @ components
    d = z.shape[1]
    fitted, means, whiteners, log_dets = [], [], [], []
    for k in range(n_classes):
        zk = z[labels == k]
        if len(zk) < 2:  # a class without training atoms has no density
            continue
        cov = np.cov(zk, rowvar=False).reshape(d, d)
        cov += shrinkage * max(np.trace(cov) / d, 1e-12) * np.eye(d)
        fitted.append(k)
        means.append(zk.mean(axis=0))
        whiteners.append(np.linalg.cholesky(np.linalg.inv(cov)))
        log_dets.append(np.linalg.slogdet(cov)[1])
    if not fitted:
        raise ValueError("no class has two training atoms: nothing to fit")
    return {"mean": mean, "components": components, "class_means": np.array(means),
            "whiteners": np.array(whiteners), "log_dets": np.array(log_dets),
            "classes": np.array(fitted)}


def novelty_score(embeddings: np.ndarray, stats: dict) -> np.ndarray:
    """NumPy reference of the graph's ``novelty`` output: min over the fitted classes of
    (z - m_k)^T S_k^-1 (z - m_k) + ln det S_k, z the projected trunk features."""
    z = (np.asarray(embeddings, np.float64) - stats["mean"]) @ stats["components"]
    scores = [np.sum(((z - m) @ w) ** 2, axis=1) + ld for m, w, ld in
              zip(stats["class_means"], stats["whiteners"], stats["log_dets"])]
    return np.min(scores, axis=0)


def add_novelty_output(proto, stats: dict, trunk: str | None = None):
    """Add (or replace) the ``novelty`` output (N,) float32 to the ONNX ``proto``, in
    place: Sub, MatMul (projection), MatMul with [L_1 ... L_K] minus [m_k L_k], Reshape to
    (N, K, d), ReduceSumSquare, Add ln det S_k, ReduceMin."""
    from onnx import TensorProto, helper, numpy_helper

    trunk = trunk or trunk_tensor(proto)
    _remove_novelty(proto)
    k, d = stats["class_means"].shape
    w = np.concatenate(list(stats["whiteners"]), axis=1)  # (d, K d)
    shift = np.concatenate([m @ wk for m, wk in zip(stats["class_means"], stats["whiteners"])])
    tensors = {"mean": stats["mean"], "components": stats["components"], "whiten": w,
               "shift": shift, "log_dets": stats["log_dets"]}
    for name, value in tensors.items():
        proto.graph.initializer.append(numpy_helper.from_array(
            np.asarray(value, np.float32), _PREFIX + name))
    proto.graph.initializer.append(numpy_helper.from_array(
        np.array([-1, k, d], np.int64), _PREFIX + "shape"))
    p = _PREFIX
    nodes = [
        helper.make_node("Flatten", [trunk], [p + "flat"], axis=1, name=p + "Flatten"),
        helper.make_node("Sub", [p + "flat", p + "mean"], [p + "centred"], name=p + "Sub"),
        helper.make_node("MatMul", [p + "centred", p + "components"], [p + "z"],
                         name=p + "Project"),
        helper.make_node("MatMul", [p + "z", p + "whiten"], [p + "zw"], name=p + "Whiten"),
        helper.make_node("Sub", [p + "zw", p + "shift"], [p + "diff"], name=p + "Shift"),
        helper.make_node("Reshape", [p + "diff", p + "shape"], [p + "per_class"],
                         name=p + "Reshape"),
        helper.make_node("ReduceSumSquare", [p + "per_class"], [p + "distance"], axes=[2],
                         keepdims=0, name=p + "Distance"),
        helper.make_node("Add", [p + "distance", p + "log_dets"], [p + "scores"],
                         name=p + "LogDet"),
        helper.make_node("ReduceMin", [p + "scores"], [NOVELTY_OUTPUT], axes=[1],
                         keepdims=0, name=p + "Min"),
    ]
    proto.graph.node.extend(nodes)
    proto.graph.output.append(helper.make_tensor_value_info(NOVELTY_OUTPUT, TensorProto.FLOAT,
                                                            ["batch"]))
    return proto


def _remove_novelty(proto) -> None:
    """Drop the nodes, initializers and output of an earlier novelty calibration."""
    for field in (proto.graph.node, proto.graph.initializer):
        for item in [i for i in field if i.name.startswith(_PREFIX)]:
            field.remove(item)
    for out in [o for o in proto.graph.output if o.name == NOVELTY_OUTPUT]:
        proto.graph.output.remove(out)


def calibrate_novelty(model_path: str | Path, train_features: np.ndarray,
                      train_labels: np.ndarray, val_features: np.ndarray,
                      percentile: float = NOVELTY_PERCENTILE, dataset: str = "",
                      n_components: int = N_COMPONENTS, source: str | None = None) -> dict:
    """Fit the class Gaussians on the (described) training atoms' trunk features (or with
    ``source='input'`` their descriptor features; default :func:`default_source`), add the
    ``novelty`` output to the model file in place, and store its threshold (the
    ``percentile`` of the described validation atoms' novelty) in the metadata key
    ``novelty``. Returns it."""
    import onnx

    from insitu.model import Classifier

    from .export import update_metadata

    clf = Classifier.load(model_path, mc_passes=1, screen=False)
    classes = clf.classes
    source = source or default_source(clf.descriptor.kind)
    if source not in ("trunk", "input"):
        raise ValueError(f"source must be 'trunk' or 'input', got {source!r}")
    train_x, train_y = _described(train_features, train_labels)
    val_x, _ = _described(val_features, np.zeros(len(val_features)))
    stats = fit_class_gaussians(trunk_features(model_path, train_x, source=source), train_y,
                                len(classes), n_components)
    proto = onnx.load(str(model_path))
    add_novelty_output(proto, stats, proto.graph.input[0].name if source == "input" else None)
    onnx.save(proto, str(model_path))
    val = novelty_score(trunk_features(model_path, val_x, source=source), stats)
    threshold = float(np.percentile(val, percentile))
    meta = {"threshold": threshold, "percentile": percentile, "source": source,
            "n_components": int(stats["components"].shape[1]),
            "feature_dimension": int(stats["components"].shape[0]),
            "classes_fitted": [classes[k] for k in stats["classes"]],
            "shrinkage": SHRINKAGE, "train_atoms": int(len(train_x)),
            "val_atoms": int(len(val_x)), "fraction_above": float(np.mean(val > threshold)),
            "dataset": dataset,
            "rule": f"the {percentile:g}th percentile of the validation atoms' novelty"}
    update_metadata(model_path, {"novelty": meta})
    return meta


def _described(features, labels):
    ok = described_mask(features)
    return np.asarray(features, np.float32)[ok], np.asarray(labels)[ok]


def calibrate_novelty_on_dataset(model_path: str | Path, data: str | Path,
                                 percentile: float = NOVELTY_PERCENTILE) -> dict:
    """:func:`calibrate_novelty` on a crystal dataset of ``insitu train data``: training
    atoms ``split`` 0, validation atoms ``split`` 1 (Neighbors Maps stored at a larger n_G
    cropped to the model's)."""
    import h5py

    from insitu.model import Classifier

    from .nm_crop import features_for

    clf = Classifier.load(model_path, mc_passes=1, screen=False)
    key = "nm" if clf.descriptor.kind == "neighbors_map" else "boo"
    with h5py.File(data, "r") as h5:
        split = h5["split"][...]
        names = json.loads(h5.attrs["classes"])
        feats = h5[key][...]
        labels = np.array([clf.classes.index(names[k]) if names[k] in clf.classes else -1
                           for k in h5["label"][...]])
        stored = json.loads(h5[key].attrs["descriptor"])
    feats = features_for(feats, stored, clf.descriptor, f"dataset {data} ['{key}']")
    train = (split == 0) & (labels >= 0)
    return calibrate_novelty(model_path, feats[train], labels[train], feats[split == 1],
                             percentile, dataset=f"{data} (training split 0, validation "
                                                 f"split 1)")
