"""Training: Adam + cross-entropy (+ L2 1e-4), fixed seeds, split by group (snapshot / run)."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from insitu.descriptors import described_mask
from insitu.training.nets import (
    BOO_ARCHITECTURES,
    DEFAULT_NM_ARCH,
    NM_ARCHITECTURES,
    build_model,
    count_parameters,
)


def set_seeds(seed: int) -> None:
    import random
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def split_by_group(groups, val_fraction: float = 0.2, seed: int = 0, labels=None) -> np.ndarray:
    """Boolean validation mask choosing whole groups (e.g. snapshots): no atom of a group is
    in both sets. With ``labels``, groups are drawn per class so that every class is in
    both sets when it has at least two groups."""
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    val_groups = []
    if labels is not None:
        labels = np.asarray(labels)
        for c in np.unique(labels):
            g = np.unique(groups[labels == c])
            k = int(round(val_fraction * len(g)))
            if len(g) >= 2:
                k = min(max(k, 1), len(g) - 1)
            val_groups.extend(rng.choice(g, size=k, replace=False).tolist())
    else:
        g = np.unique(groups)
        k = max(1, int(round(val_fraction * len(g)))) if len(g) > 1 else 0
        val_groups = rng.choice(g, size=k, replace=False).tolist()
    return np.isin(groups, np.asarray(val_groups, dtype=groups.dtype))


def _class_weight_tensor(class_weights, labels, n_classes):
    if class_weights is None:
        return None
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError("class_weights: 'balanced', a sequence or None, "
                             f"not {class_weights!r}")
        counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    else:
        w = np.asarray(class_weights, dtype=np.float64)
        if len(w) != n_classes:
            raise ValueError(f"class_weights has {len(w)} entries for {n_classes} classes")
    return torch.as_tensor(w, dtype=torch.float32)


@torch.no_grad()
def predict_logits(model, features, batch_size: int = 2048) -> np.ndarray:
    model.eval()
    out = []
    for s in range(0, len(features), batch_size):
        x = torch.as_tensor(np.asarray(features[s:s + batch_size], dtype=np.float32))
        out.append(model(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def train_classifier(features, labels, groups, classes, descriptor=None, arch: str = "cnn",
                     epochs: int = 10, class_weights=None, seed: int = 0, val_mask=None,
                     val_fraction: float = 0.2, batch_size: int = 128, lr: float = 1e-3,
                     weight_decay: float = 1e-4, threads: int | None = None,
                     progress: bool = True, max_train: int | None = None,
                     val_monitor: int = 5000, distill=None):
    """Fit a classifier on per-atom features.

    Parameters
    ----------
    features : (N, *feature_shape) array (NM: (N, C, n_G, n_G); BOO: (N, F)).
    labels : (N,) int, indices into ``classes``.
    groups : (N,) int, the snapshot (or run) each atom comes from; the validation set is made
        of whole groups (no leakage between atoms of the same snapshot).
    classes : list of class names.
    descriptor : descriptor object (only recorded in the report).
    arch : ``'cnn'`` (paper CNN, Appendix A) or ``'mlp'`` (BOO features).
    class_weights : None, ``'balanced'`` or a sequence of K weights for the loss.
    val_mask : optional boolean mask of validation atoms (overrides the random group split).
    max_train : optional cap on training atoms (random subset, seeded).
    val_monitor : validation atoms scored after each epoch (all of them at the end).
    distill : optional :class:`insitu.training.distill.Distillation` (teacher logits per
        dataset row): the loss becomes Hinton et al.'s (1 - A) CE + A TAU^2 KL on the
        training atoms (recorded in ``report['distillation']``).

    Returns ``(model, report)``: the torch model (eval mode, returns logits) and a dict with
    ``val_accuracy``, ``train_accuracy``, ``history`` (per epoch), ``confusion`` (K x K,
    rows = truth), ``val_index`` (indices of the validation atoms), ``val_pred``,
    ``n_train``, ``n_val``, ``n_parameters``, ``seconds``, ``epochs``, ``seed``.
    """
    t0 = time.time()
    set_seeds(seed)
    if threads:
        torch.set_num_threads(int(threads))
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups)
    n_classes = len(classes)
    if val_mask is None:
        val_mask = split_by_group(groups, val_fraction, seed, labels)
    val_mask = np.asarray(val_mask, dtype=bool)
    # atoms the descriptor cannot describe (NaN features: too few neighbours, e.g. after
    # removing half the atoms) are unknown at inference; they carry no label to learn
    described = described_mask(features)
    train_idx = np.nonzero(~val_mask & described)[0]
    val_idx = np.nonzero(val_mask)[0]
    if len(train_idx) == 0:
        raise ValueError("train_classifier: empty training set")
    rng = np.random.default_rng(seed)
    if max_train is not None and len(train_idx) > max_train:
        train_idx = np.sort(rng.choice(train_idx, size=max_train, replace=False))
    x_train = np.asarray(features[train_idx] if isinstance(features, np.ndarray)
                         else np.asarray(features)[train_idx], dtype=np.float32)
    y_train = labels[train_idx]
    feature_shape = x_train.shape[1:]
    model = build_model(arch, feature_shape, n_classes, features=x_train)
    loss_fn = nn.CrossEntropyLoss(weight=_class_weight_tensor(class_weights, y_train, n_classes))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(train_idx) / batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=max(1, epochs),
                                                steps_per_epoch=steps_per_epoch)
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train)
    soft = None if distill is None else distill.soft_log_targets(train_idx)
    x_val = np.asarray(features[val_idx], dtype=np.float32) if len(val_idx) else None
    y_val = labels[val_idx]
    # per-epoch monitoring on a fixed subset of the validation atoms (full set at the end)
    mon = (np.sort(rng.choice(len(val_idx), size=min(len(val_idx), val_monitor), replace=False))
           if len(val_idx) else None)
    history = []
    gen = torch.Generator().manual_seed(seed)
    from tqdm import tqdm
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        tot_loss = 0.0
        correct = 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                   disable=not progress)
        for b in bar:
            idx = perm[b * batch_size:(b + 1) * batch_size]
            if len(idx) < 2:  # BatchNorm needs 2 samples
                continue
            xb, yb = xt[idx], yt[idx]
            logits = model(xb)
            loss = (loss_fn(logits, yb) if soft is None
                    else distill.loss(logits, yb, soft[idx], loss_fn))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            if b % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        rec = {"epoch": epoch + 1, "loss": tot_loss / len(xt), "train_accuracy": correct / len(xt)}
        if x_val is not None:
            pred = predict_logits(model, x_val[mon]).argmax(1)
            rec["val_accuracy_subset"] = float((pred == y_val[mon]).mean())
        history.append(rec)
        if progress:
            msg = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in rec.items())
            tqdm.write(msg)
    model.eval()
    report = {
        "arch": arch, "classes": list(classes), "epochs": epochs, "seed": seed,
        "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "class_weights": (class_weights if isinstance(class_weights, (str, type(None)))
                          else [float(w) for w in class_weights]),
        "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
        "n_train_groups": int(len(np.unique(groups[train_idx]))),
        "n_val_groups": int(len(np.unique(groups[val_idx]))) if len(val_idx) else 0,
        "n_parameters": count_parameters(model), "history": history,
        "train_accuracy": history[-1]["train_accuracy"] if history else None,
        "val_index": val_idx,
        "descriptor": descriptor.to_metadata() if hasattr(descriptor, "to_metadata") else None,
        "distillation": None if distill is None else distill.metadata(),
    }
    if x_val is not None:
        val_pred = predict_logits(model, x_val).argmax(1)
        report["val_pred"] = val_pred
        report["val_accuracy"] = float((val_pred == y_val).mean())
        conf = np.zeros((n_classes, n_classes), dtype=np.int64)
        np.add.at(conf, (y_val, val_pred), 1)
        report["confusion"] = conf.tolist()
    else:
        report["val_pred"] = np.zeros(0, np.int64)
        report["val_accuracy"] = None
        report["confusion"] = None
    report["seconds"] = round(time.time() - t0, 1)
    return model, report


def training_summary(report: dict, dataset: str | None = None, extra: dict | None = None) -> dict:
    """JSON-able summary of a training report for the model metadata."""
    keep = ("arch", "epochs", "seed", "batch_size", "lr", "weight_decay", "class_weights",
            "n_train", "n_val", "n_train_groups", "n_val_groups", "n_parameters",
            "train_accuracy", "val_accuracy", "confusion", "seconds", "distillation")
    out = {k: report.get(k) for k in keep}
    out["history"] = [{k: round(v, 5) if isinstance(v, float) else v for k, v in h.items()}
                      for h in report.get("history", [])]
    out["dataset"] = dataset
    out["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    out["optimizer"] = "Adam (L2 weight_decay), cross-entropy, one-cycle LR"
    out["split"] = "by group (snapshot/run), no atom in both sets"
    out["torch"] = torch.__version__
    if extra:
        out.update(extra)
    return out


DESCRIPTOR_KEYS = {"nm": ("nm", "cnn"), "boo": ("boo", "mlp-last")}  # (dataset key, default)


def fit_from_hdf5(data, descriptor: str = "nm", out=None, epochs: int = 10, seed: int = 0,
                  class_weights="balanced", threshold: float = 0.5, max_train: int | None = None,
                  batch_size: int = 256, lr: float = 2e-3, threads: int | None = None,
                  card: bool = True, progress: bool = True, command: str | None = None,
                  arch: str | None = None, n_grid: int | None = None,
                  teacher=None, distill_alpha: float | None = None,
                  distill_temperature: float | None = None):
    """``insitu train fit``: train on a dataset from ``insitu train data``, export ONNX, and
    write the validation tables (and a model card ``<out>.md`` when ``card``).

    ``arch``: the network, a name of :data:`insitu.training.nets.NM_ARCHITECTURES` for
    ``descriptor='nm'`` (default :data:`~insitu.training.nets.DEFAULT_NM_ARCH`), one of
    :data:`~insitu.training.nets.BOO_ARCHITECTURES` (default ``'mlp-last'``) for ``'boo'``.
    ``n_grid``: train on Neighbors Maps of this n_G, cropped from the stored (larger) ones
    (exact: :mod:`insitu.training.nm_crop`); the model's descriptor and fingerprint are
    those of the cropped maps.
    ``teacher``: an exported model to distil (:mod:`insitu.training.distill`, weight
    ``distill_alpha`` and temperature ``distill_temperature`` of its soft labels).

    Returns (out_path, report).
    """
    import h5py

    from insitu.descriptors import descriptor_from_metadata
    from insitu.training.export import export_onnx
    from insitu.training.mc_calibration import DEFAULT_MC_PASSES, calibrate_mi_threshold
    from insitu.training.model_card import write_crystal_card
    from insitu.training.novelty import calibrate_novelty
    from insitu.training.report import validation_tables

    t_start = time.time()
    if descriptor not in DESCRIPTOR_KEYS:
        raise ValueError(f"descriptor must be one of {sorted(DESCRIPTOR_KEYS)}")
    key, family = DESCRIPTOR_KEYS[descriptor]
    if family == "cnn":
        arch = arch or DEFAULT_NM_ARCH
        if arch not in NM_ARCHITECTURES:
            raise ValueError(f"--arch {arch!r}: Neighbors Map networks are "
                             f"{sorted(NM_ARCHITECTURES)}")
    elif arch not in (None, *BOO_ARCHITECTURES):
        raise ValueError(f"--arch {arch!r}: the {descriptor} descriptor trains "
                         f"{sorted(BOO_ARCHITECTURES)}")
    else:
        arch = arch or family
    data = Path(data)
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no dataset; make one with "
                                f"`insitu train data --out {data}`")
    with h5py.File(data, "r") as h5:
        if key not in h5:
            raise ValueError(f"{data}: has no '{key}' descriptors (has {list(h5)})")
        feats = h5[key][...]
        desc_meta = json.loads(h5[key].attrs["descriptor"])
        fingerprint = json.loads(h5[key].attrs.get("fingerprint", "null"))
        classes = json.loads(h5.attrs["classes"])
        cols = {k: h5[k][...] for k in h5 if k not in ("nm", "boo") and h5[k].ndim == 1}
        provenance = json.loads(h5.attrs.get("provenance", "{}"))
    desc = descriptor_from_metadata(desc_meta)
    if fingerprint is not None:  # features of other descriptor code are refused
        from insitu.descriptors.fingerprint import check_fingerprint
        check_fingerprint(fingerprint, desc, f"dataset {data} ['{key}']")
    val_mask = cols["split"] == 1 if "split" in cols else split_by_group(
        cols["group"], 0.2, seed, cols["label"])
    distill = None if teacher is None else teacher_targets(
        teacher, feats, ~val_mask, classes, desc, distill_alpha, distill_temperature)
    crop = {}
    if n_grid is not None and n_grid != getattr(desc, "n_grid", None):
        from insitu.descriptors.fingerprint import descriptor_fingerprint
        from insitu.training.nm_crop import crop_maps, cropped_descriptor
        crop = {"cropped_from": desc_meta}
        desc = cropped_descriptor(desc, n_grid)
        feats = crop_maps(feats, n_grid)
        desc_meta = desc.to_metadata()
        fingerprint = descriptor_fingerprint(desc) if fingerprint is not None else None
    model, report = train_classifier(feats, cols["label"], cols["group"], classes, desc, arch=arch,
                                     epochs=epochs, class_weights=class_weights, seed=seed,
                                     val_mask=val_mask, batch_size=batch_size, lr=lr,
                                     threads=threads, progress=progress, max_train=max_train,
                                     distill=distill)
    out = Path(out or f"models/crystal-{descriptor}.onnx")
    summary = training_summary(report, dataset=str(data), extra={
        "dataset_created": provenance.get("created"),
        "materials": [m.get("name") for m in provenance.get("materials", [])],
        "potentials": [m.get("potential") for m in provenance.get("materials", [])],
        "descriptor_fingerprint": fingerprint, **crop})
    export_onnx(model, desc, classes, out, threshold=threshold, training_summary=summary,
                validation_accuracy=report["val_accuracy"], mc_passes=DEFAULT_MC_PASSES,
                mc_seed=seed)
    if report["val_accuracy"] is not None:  # the MI threshold of MC dropout, on validation
        calibrate_mi_threshold(out, feats[report["val_index"]], report["val_index"] + 1,
                               dataset=str(data), labels=cols["label"][report["val_index"]])
        # the feature-space novelty (the CNN's trunk features, the MLP's input features):
        # class Gaussians on the training split, threshold on the validation split
        train_rows = np.setdiff1d(np.arange(len(feats)), report["val_index"])
        calibrate_novelty(out, feats[train_rows], cols["label"][train_rows],
                          feats[report["val_index"]], dataset=f"{data} (training split 0, "
                          f"validation split 1)" if "split" in cols else str(data))
    report["out"] = str(out)
    report["threshold"] = threshold
    if report["val_accuracy"] is not None:
        tables = validation_tables(out, data, report["val_index"], feats=feats, cols=cols)
        report["tables"] = tables
    report["seconds_total"] = round(time.time() - t_start, 1)
    if card:
        write_crystal_card(out, report, provenance, desc_meta, command=command)
    return out, report


def teacher_targets(teacher, features, train_mask, classes, descriptor, alpha=None,
                    temperature=None):
    """The :class:`~insitu.training.distill.Distillation` of ``teacher`` on the described
    atoms of ``train_mask`` (never a validation atom); None alpha/temperature: defaults."""
    from insitu.training import distill as kd

    rows = np.nonzero(np.asarray(train_mask, bool) & described_mask(features))[0]
    return kd.load_teacher_targets(
        teacher, features, rows, classes, descriptor,
        alpha=kd.DEFAULT_ALPHA if alpha is None else alpha,
        temperature=kd.DEFAULT_TEMPERATURE if temperature is None else temperature)
