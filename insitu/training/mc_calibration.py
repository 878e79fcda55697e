"""MC dropout for trained models: rebuild a torch net from an exported model's weights,
re-export it with the dropout-mask input (:mod:`insitu.training.export`), and choose the
mutual-information threshold on validation data (ARISE Supp. Eq. 5,
:mod:`insitu.model.mc_dropout`).

The threshold is chosen on validation data at the model's default number of passes T: the
99th percentile of the validation atoms' MI (about 1 % of them are then ``unknown`` by
MI), raised where needed so that the validation accuracy, unknown atoms counted as wrong,
stays within 0.2 points of one deterministic pass.
Torch is imported only by the functions that rebuild or export a net.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from insitu.descriptors import described_mask
from insitu.model import Classifier

__all__ = ["DEFAULT_MC_PASSES", "MI_PERCENTILE", "MAX_ACCURACY_LOSS", "torch_model_from_onnx",
           "reexport_with_mc", "validation_mi", "accuracy_threshold", "calibrate_mi_threshold",
           "calibrate_on_dataset", "calibrate_on_ramp", "validation_split"]

DEFAULT_MC_PASSES = 20
"""Default passes T of the shipped models: the MI of the validation atoms is stable to a
few % between T = 20 and T = 30, and the head's T passes then cost ~10 % of the paper
CNN's trunk (benchmarks/insitu_overhead.py)."""
MI_PERCENTILE = 99.0
"""Percentile of the validation MI used as the threshold (at least)."""
MAX_ACCURACY_LOSS = 0.002
"""Validation accuracy (unknown atoms counted as wrong) the MI threshold may cost against
one deterministic pass, when the validation labels are known: 0.2 points."""

# Dropout rates of the training code (insitu.training.nets defaults); the exported graphs
# of models trained before MC export do not record them.
_TRAINED_RATES = {"cnn": 0.5}


def torch_model_from_onnx(path: str | Path):
    """The torch net (eval mode) of an exported insitu model, its weights read from the
    ONNX initializers (``model.<parameter>`` names of the export); dropout at the rate the
    training code uses."""
    import onnx
    import torch
    from onnx import numpy_helper

    from .nets import BOO_ARCHITECTURES, BOOMLP, NeighborsMapCNN

    proto = onnx.load(str(path))
    weights = {i.name[len("model."):]: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in proto.graph.initializer if i.name.startswith("model.")}
    if "features.0.weight" in weights:
        if not {"head.1.weight", "head.4.weight", "features.9.weight"} <= set(weights):
            raise ValueError(f"{path}: only the paper CNN and the BOO MLPs are rebuilt from "
                             "their ONNX weights (a lighter network is exported with its "
                             "MC-dropout input by `insitu train fit`)")
        w0, last = weights["features.0.weight"], weights["head.4.weight"]
        n_grid = int(round(np.sqrt(weights["head.1.weight"].shape[1] / 32))) * 8
        model = NeighborsMapCNN(int(w0.shape[1]), int(last.shape[0]), n_grid,
                                dropout=_TRAINED_RATES["cnn"])
    elif "net.0.weight" in weights:
        layers = sorted(int(k.split(".")[1]) for k in weights if k.endswith(".weight"))
        hidden = tuple(int(weights[f"net.{i}.weight"].shape[0]) for i in layers[:-1])
        # Linear - ReLU - Dropout per hidden layer ('mlp'), or no Dropout but the last
        # ('mlp-last'): the spacing of the Linear layers in the Sequential tells
        arch = "mlp-last" if len(layers) > 2 and layers[1] - layers[0] == 2 else "mlp"
        model = BOOMLP(int(weights["mean"].shape[0]),
                       int(weights[f"net.{layers[-1]}.weight"].shape[0]), hidden,
                       **BOO_ARCHITECTURES[arch])
    else:
        raise ValueError(f"{path}: not an export of NeighborsMapCNN or BOOMLP")
    state = model.state_dict()
    # the exporter stores equal tensors once (e.g. the running variance and the scale of
    # an untrained BatchNorm, all ones), the other names as Identity nodes of it
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.output[0].startswith("model.") \
                and node.input[0].startswith("model."):
            weights.setdefault(node.output[0][len("model."):],
                               weights.get(node.input[0][len("model."):]))
    missing = [k for k in state if weights.get(k) is None
               and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path}: weights {missing} missing from the ONNX initializers")
    state.update({k: v.reshape(state[k].shape) for k, v in weights.items()
                  if k in state and v is not None})
    model.load_state_dict(state)
    return model.eval()


def reexport_with_mc(path: str | Path, out: str | Path | None = None,
                     passes: int = DEFAULT_MC_PASSES, seed: int | None = None) -> Path:
    """Re-export the model at ``path`` (to ``out``, default in place) with the dropout-mask
    input, its metadata kept. ``seed`` defaults to the training seed. The MI threshold is
    left at log2 K until :func:`calibrate_mi_threshold`."""
    import onnx

    from .export import export_onnx

    clf = Classifier.load(path, mc_passes=1, screen=False)
    model = torch_model_from_onnx(path)
    proto = onnx.load(str(path))
    # the novelty output is not re-exported: its metadata goes with it (re-calibrate)
    kept = {e.key: e.value for e in proto.metadata_props if e.key.startswith("insitu.")
            and e.key not in _WRITTEN_BY_EXPORT and e.key != "insitu.novelty"}
    training = clf.metadata.get("training") or {}
    seed = int(training.get("seed", 0) if seed is None else seed)
    out = Path(out or path)
    export_onnx(model, clf.metadata["descriptor"], clf.classes, out,
                threshold=clf.confidence_threshold, training_summary=training,
                validation_accuracy=clf.metadata.get("validation_accuracy"),
                atom_types=clf.atom_types, feature_shape=clf.feature_shape,
                extra_metadata=kept, mc_passes=passes, mc_seed=seed)
    return out


_WRITTEN_BY_EXPORT = {"insitu.format", "insitu.classes", "insitu.descriptor",
                      "insitu.confidence_threshold", "insitu.training",
                      "insitu.validation_accuracy", "insitu.feature_shape", "insitu.exported",
                      "insitu.atom_types", "insitu.mc_dropout"}


def validation_mi(model, features: np.ndarray, ids: np.ndarray, n_threads: int = 1,
                  n_passes: int | None = None) -> dict:
    """MC dropout at the default T of ``model`` (a :class:`Classifier` or a path), or at
    ``n_passes``, on validation features: ``mean_probabilities``, ``mi`` (bits),
    ``described`` (finite features) and ``novelty`` (None for a model without it) per
    atom. ``ids`` seed the masks (step 0), e.g. the atoms' dataset rows."""
    clf = model if isinstance(model, Classifier) else Classifier.load(
        model, n_threads=n_threads, screen=False)
    x = np.asarray(features, np.float32)
    described = described_mask(x)
    x = np.where(described.reshape((-1,) + (1,) * (x.ndim - 1)), x, 0).astype(np.float32)
    novelty = None if clf.novelty_threshold is None else np.zeros(len(x), np.float32)
    mean, mi, _ = clf.predict_mc(x, ids, 0, n_passes, novelty_out=novelty)
    return {"mean_probabilities": mean, "mi": np.where(described, mi, 0.0),
            "described": described, "novelty": novelty}


def accuracy_threshold(mean: np.ndarray, mi: np.ndarray, one_pass: np.ndarray,
                       labels: np.ndarray, described: np.ndarray, confidence_threshold: float,
                       max_loss: float = MAX_ACCURACY_LOSS) -> float:
    """The smallest MI threshold (bits) at which the MC-dropout labels (mean probabilities
    ``mean``, atoms above the threshold or below ``confidence_threshold`` unknown, unknown
    counted as wrong) lose at most ``max_loss`` accuracy against one deterministic pass
    (probabilities ``one_pass``); the largest MI when no threshold does."""
    labels = np.asarray(labels)
    base = np.mean((one_pass.argmax(1) == labels) & (one_pass.max(1) >= confidence_threshold)
                   & described)
    right = (mean.argmax(1) == labels) & (mean.max(1) >= confidence_threshold) & described
    need = int(np.ceil((base - max_loss) * len(labels) - 1e-9))
    ranked = np.sort(mi[right])
    if need > len(ranked):
        return float(mi.max())
    return float(ranked[need - 1]) if need > 0 else 0.0


def calibrate_mi_threshold(model_path: str | Path, features: np.ndarray, ids: np.ndarray,
                           percentile: float = MI_PERCENTILE, dataset: str = "",
                           n_threads: int = 1, labels: np.ndarray | None = None,
                           max_loss: float = MAX_ACCURACY_LOSS) -> dict:
    """Set the model's MI threshold from its (described) validation atoms at the default T
    and store the calibration in the metadata (``mc_calibration``): the ``percentile`` of
    their MI, or, with ``labels``, the larger of that and :func:`accuracy_threshold` (at
    most ``max_loss`` of accuracy lost, unknown atoms counted as wrong). Returns the
    calibration."""
    from .export import update_metadata

    run = validation_mi(model_path, features, ids, n_threads)
    mi = run["mi"][run["described"]]
    threshold = float(np.percentile(mi, percentile))
    rule = f"the {percentile:g}th percentile of the validation MI"
    clf = Classifier.load(model_path, mc_passes=1, screen=False)
    calibration = {"percentile": percentile, "percentile_threshold": threshold}
    if labels is not None:
        x = np.where(run["described"].reshape((-1,) + (1,) * (np.ndim(features) - 1)),
                     features, 0).astype(np.float32)
        by_accuracy = accuracy_threshold(run["mean_probabilities"], run["mi"],
                                         clf.predict_proba(x), labels, run["described"],
                                         clf.confidence_threshold, max_loss)
        calibration["accuracy_threshold"] = by_accuracy
        if by_accuracy > threshold:
            threshold = by_accuracy
            rule = (f"the smallest threshold that keeps the validation accuracy within "
                    f"{100 * max_loss:g} points of one pass (unknown atoms counted as "
                    f"wrong; above the {percentile:g}th percentile of the validation MI)")
    mc = dict(clf.metadata["mc_dropout"], mi_threshold=threshold)
    calibration.update({"rule": rule, "passes": mc["passes"], "atoms": int(len(mi)),
                        "dataset": dataset, "mi_threshold": threshold,
                        "fraction_above": float(np.mean(mi > threshold)),
                        "mi_percentiles_50_90_99_99.9": [float(v) for v in np.percentile(
                            mi, [50, 90, 99, 99.9])]})
    update_metadata(model_path, {"mc_dropout": mc, "mc_calibration": calibration})
    return calibration


def calibrate_on_dataset(model_path: str | Path, data: str | Path,
                         percentile: float = MI_PERCENTILE) -> dict:
    """:func:`calibrate_mi_threshold` on the validation atoms (``split`` 1) of a crystal
    dataset of ``insitu train data``, the masks seeded by the dataset row (Neighbors Maps
    stored at a larger n_G cropped to the model's: :func:`insitu.training.nm_crop.features_for`)."""
    clf = Classifier.load(model_path, mc_passes=1, screen=False)
    val, features, labels = validation_split(data, clf)
    return calibrate_mi_threshold(model_path, features, val + 1, percentile,
                                  dataset=f"{data} (validation split)", labels=labels)


def validation_split(data: str | Path, clf: Classifier) -> tuple:
    """(rows, features, labels) of the validation atoms (``split`` 1) of a crystal dataset
    of ``insitu train data``, the features as ``clf``'s descriptor computes them (Neighbors
    Maps stored at a larger n_G cropped: :func:`insitu.training.nm_crop.features_for`);
    ValueError when the dataset's classes are not the model's."""
    import json

    import h5py

    from .nm_crop import features_for

    key = "nm" if clf.descriptor.kind == "neighbors_map" else "boo"
    with h5py.File(data, "r") as h5:
        val = np.nonzero(h5["split"][...] == 1)[0]
        features = h5[key][...][val]
        labels = h5["label"][...][val]
        stored = json.loads(h5[key].attrs["descriptor"])
        classes = json.loads(h5.attrs["classes"]) if "classes" in h5.attrs else None
    if classes is not None and list(classes) != clf.classes:
        raise ValueError(f"{data}: classes {classes} are not the model's {clf.classes}")
    return val, features_for(features, stored, clf.descriptor,
                             f"dataset {data} ['{key}']"), labels


def calibrate_on_ramp(model_path: str | Path, system: str, data_dir: str | Path,
                      atoms_per_snapshot: int = 500, seed: int = 0,
                      percentile: float = MI_PERCENTILE) -> dict:
    """:func:`calibrate_mi_threshold` on the validation snapshots of a ramp model: the
    ramp's snapshots labelled, sampled and split by snapshot as in its training
    (:func:`insitu.training.ramp_training.train_ramp_model`)."""
    from insitu.descriptors import NeighborsMap

    from .autolabel import read_snapshot_index
    from .ramp_systems import get_ramp_system
    from .ramp_training import build_ramp_dataset
    from .train import split_by_group

    ramp = get_ramp_system(system)
    labelled = ramp.label_snapshots(read_snapshot_index(data_dir))
    x, y, groups, _ = build_ramp_dataset(labelled, NeighborsMap(**ramp.descriptor),
                                         ramp.classes, atoms_per_snapshot, seed,
                                         augment=ramp.augment)
    val = np.nonzero(split_by_group(groups, 0.2, seed, y))[0]
    return calibrate_mi_threshold(model_path, x[val], val + 1, percentile,
                                  dataset=f"{data_dir} (validation snapshots of the ramp)",
                                  labels=y[val])
