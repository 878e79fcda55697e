"""Export a trained classifier to ONNX with everything inference needs in metadata_props.

Graph contract (kept by :mod:`insitu.model`): input ``features`` float32
(batch, *feature_shape) with a dynamic batch axis; output ``probabilities`` float32
(batch, K), softmax inside the graph (and for the MLP the standardisation too).
"""

from __future__ import annotations

import copy
import datetime
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .nets import WithSoftmax

FORMAT_VERSION = "1"
OPSET = 17


def _descriptor_metadata(descriptor) -> dict:
    return descriptor.to_metadata() if hasattr(descriptor, "to_metadata") else dict(descriptor)


def export_onnx(model, descriptor, classes, path, threshold: float = 0.5,
                training_summary: dict | None = None, validation_accuracy: float | None = None,
                atom_types: dict | None = None, feature_shape=None,
                extra_metadata: dict | None = None) -> Path:
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

    wrapped = WithSoftmax(copy.deepcopy(model).cpu().float()).eval()
    dummy = torch.zeros((2,) + feature_shape, dtype=torch.float32)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = dict(input_names=["features"], output_names=["probabilities"],
                      dynamic_axes={"features": {0: "batch"}, "probabilities": {0: "batch"}},
                      opset_version=OPSET)
        try:
            torch.onnx.export(wrapped, (dummy,), str(tmp), dynamo=False, **kwargs)
        except TypeError:  # older torch without the dynamo switch
            torch.onnx.export(wrapped, (dummy,), str(tmp), **kwargs)

    import onnx
    proto = onnx.load(str(tmp))
    tmp.unlink()
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
