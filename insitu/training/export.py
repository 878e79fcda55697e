"""Export a trained classifier to ONNX with everything inference needs in metadata_props.

Graph contract (kept by :mod:`insitu.model`): input ``features`` float32
(batch, *feature_shape) with a dynamic batch axis; output ``probabilities`` float32
(batch, K), softmax inside the graph (and for the MLP the standardisation too), dropout
off. A model with dropout in its head (both shipped nets) also has the optional input
``dropout_mask`` (atoms | 1, passes | 1, units) float32, whose default (an initializer
of ones) is dropout off, and the output ``pass_probabilities`` (batch, passes, K): the
layers before the first dropout run once per atom, the head once per (atom, pass) row
(MC dropout, :mod:`insitu.model.mc_dropout`). ``probabilities`` is computed by the same
operators as a model without the mask, so it is unchanged. A head that is one dense layer
also gets the outputs of :mod:`.head_outputs` (its input, weight and bias), so that its
passes run in numba (:mod:`insitu.model.mc_head`).
"""

from __future__ import annotations

import copy
import datetime
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from insitu.model.mc_dropout import MASK_INPUT, PASS_OUTPUT

from .head_outputs import expose_head
from .nets import WithSoftmax

FORMAT_VERSION = "1"
OPSET = 17


def _descriptor_metadata(descriptor) -> dict:
    return descriptor.to_metadata() if hasattr(descriptor, "to_metadata") else dict(descriptor)


def flush_subnormals(model) -> int:
    """Set the float32 weights and buffers of ``model`` below the smallest normal float32
    (1.2e-38 in magnitude) to 0, in place; returns how many there were. Weight decay
    leaves dead units with such weights, and x86 CPUs compute with subnormal numbers
    10-100x slower: the shipped paper CNN ran 2-3x slower through onnxruntime for 1,100
    of its 27,000 weights, with bit-identical outputs once they are zero."""
    import torch

    tiny = torch.finfo(torch.float32).tiny
    flushed = 0
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.dtype == torch.float32:
                small = (tensor != 0) & (tensor.abs() < tiny)
                flushed += int(small.sum())
                tensor[small] = 0.0
    return flushed


def export_onnx(model, descriptor, classes, path, threshold: float = 0.5,
                training_summary: dict | None = None, validation_accuracy: float | None = None,
                atom_types: dict | None = None, feature_shape=None,
                extra_metadata: dict | None = None, mc_passes: int = 1, mc_seed: int = 0,
                mi_threshold: float | None = None) -> Path:
    """Write ``model`` (a torch module returning logits) to ``path`` as ONNX.

    Parameters
    ----------
    model : torch.nn.Module returning logits (batch, K).
    descriptor : descriptor object with ``to_metadata()`` (or its metadata dict).
    classes : list of lower-case class names, in the order of the model's outputs.
    threshold : confidence below which the runtime labels an atom ``unknown``.
    training_summary : JSON-able dict (dataset, epochs, seeds, sizes, date, ...).
    validation_accuracy : overall validation accuracy (0-1).
    atom_types : optional {type: element} used in training.
    feature_shape : per-atom feature shape; defaults to ``descriptor.feature_shape``.
    mc_passes, mc_seed, mi_threshold : MC-dropout defaults stored in the metadata when the
        model has dropout in its head (``trunk`` / ``head_layers``): passes T (1 = dropout
        off), mask seed, and the mutual-information threshold in bits (None: log2 K, i.e.
        no atom is unknown by MI until :func:`insitu.training.mc_calibration` sets it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta_desc = _descriptor_metadata(descriptor)
    if feature_shape is None:
        feature_shape = getattr(descriptor, "feature_shape", None)
    if feature_shape is None:
        raise ValueError("export_onnx: feature_shape unknown (pass feature_shape=...)")
    feature_shape = tuple(int(s) for s in feature_shape)
    classes = [str(c).lower() for c in classes]

    model = copy.deepcopy(model).cpu().float().eval()
    flush_subnormals(model)
    dummy = torch.zeros((2,) + feature_shape, dtype=torch.float32)
    mc = WithMcDropout(model, feature_shape) if has_mc_head(model) else None
    wrapped = WithSoftmax(model).eval() if mc is None else mc.eval()
    args = (dummy,) if mc is None else (dummy, torch.ones((2, 3, mc.n_units)))
    inputs, outputs = ["features"], ["probabilities"]
    axes = {"features": {0: "batch"}, "probabilities": {0: "batch"}}
    if mc is not None:
        inputs.append(MASK_INPUT)
        outputs.append(PASS_OUTPUT)
        axes.update({MASK_INPUT: {0: "mask_atoms", 1: "passes"},
                     PASS_OUTPUT: {0: "batch", 1: "passes"}})
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = dict(input_names=inputs, output_names=outputs, dynamic_axes=axes,
                      opset_version=OPSET)
        try:
            torch.onnx.export(wrapped, args, str(tmp), dynamo=False, **kwargs)
        except TypeError:  # older torch without the dynamo switch
            torch.onnx.export(wrapped, args, str(tmp), **kwargs)

    import onnx
    from onnx import numpy_helper
    proto = onnx.load(str(tmp))
    tmp.unlink()
    if mc is not None:  # the mask input defaults to ones: dropout off
        proto.graph.initializer.append(numpy_helper.from_array(
            np.ones((1, 1, mc.n_units), np.float32), MASK_INPUT))
        expose_head(proto)  # a one-layer head runs in numba (insitu.model.mc_head)
    meta = {
        "insitu.format": FORMAT_VERSION,
        "insitu.classes": json.dumps(classes),
        "insitu.descriptor": json.dumps(meta_desc),
        "insitu.confidence_threshold": str(float(threshold)),
        "insitu.training": json.dumps(training_summary or {}, default=_json_default),
        "insitu.validation_accuracy": str(float(validation_accuracy)
                                          if validation_accuracy is not None else float("nan")),
        "insitu.feature_shape": json.dumps(list(feature_shape)),
        "insitu.exported": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds"),
    }
    if mc is not None:
        meta["insitu.mc_dropout"] = json.dumps({
            "units": mc.units, "rates": mc.rates, "passes": int(mc_passes),
            "seed": int(mc_seed), "mi_threshold": float(np.log2(len(classes))
                                                        if mi_threshold is None
                                                        else mi_threshold)})
    if atom_types is not None:
        meta["insitu.atom_types"] = json.dumps({str(k): v for k, v in atom_types.items()})
    for k, v in (extra_metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v, default=_json_default)
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "insitu"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def update_metadata(path, updates: dict) -> Path:
    """Rewrite the ``insitu.<key>`` metadata entries of an exported model (values JSON
    encoded unless strings; None removes the entry); the graph is untouched."""
    import onnx

    proto = onnx.load(str(path))
    entries = {e.key: e.value for e in proto.metadata_props}
    for key, value in updates.items():
        if value is None:  # remove the entry
            entries.pop(f"insitu.{key}", None)
            continue
        entries[f"insitu.{key}"] = value if isinstance(value, str) else json.dumps(
            value, default=_json_default)
    del proto.metadata_props[:]
    for k, v in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(path))
    return Path(path)


def has_mc_head(model: nn.Module) -> bool:
    """Whether ``model`` splits into ``trunk`` + ``head_layers`` with a dropout in the head."""
    return hasattr(model, "trunk") and hasattr(model, "head_layers") and any(
        isinstance(m, nn.Dropout) for m in model.head_layers())


class WithMcDropout(nn.Module):
    """Export wrapper: ``(features, dropout_mask) -> (probabilities, pass_probabilities)``.

    ``probabilities`` is softmax(head(trunk(x))) with dropout off, the operators of
    :class:`WithSoftmax`. ``pass_probabilities`` runs the trunk once and the head on
    (atoms x passes) rows, each ``nn.Dropout`` replaced by a product with its slice of the
    mask (ARISE Supp. Eq. 4's p(y | x, w_t), one pass t per row)."""

    def __init__(self, model: nn.Module, feature_shape):
        super().__init__()
        self.model = model
        self.head = model.head_layers()
        self.units, self.rates = [], []
        with torch.no_grad():
            x = model.trunk(torch.zeros((2,) + tuple(feature_shape)))
            for layer in self.head:
                if isinstance(layer, nn.Dropout):
                    self.units.append(int(x.shape[-1]))
                    self.rates.append(float(layer.p))
                x = layer(x)
        self.n_units = sum(self.units)

    def forward(self, features, dropout_mask):
        trunk = self.model.trunk(features.float())
        probabilities = torch.softmax(self.head(trunk), dim=-1)
        x, offset, first = trunk, 0, True
        for layer in self.head:
            if not isinstance(layer, nn.Dropout):
                x = layer(x)
                continue
            width = int(x.shape[-1])
            mask = dropout_mask if width == self.n_units \
                else dropout_mask[:, :, offset:offset + width]
            offset += width
            # (atoms, 1, F) * (atoms | 1, passes | 1, F) -> one row per (atom, pass)
            x = (x.unsqueeze(1) * mask).reshape(-1, width) if first \
                else x * mask.reshape(-1, width)
            first = False
        passes = torch.softmax(x, dim=-1).reshape(features.shape[0], -1, x.shape[-1])
        return probabilities, passes


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
