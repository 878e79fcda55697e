"""The insitu model file: an ONNX graph whose ``metadata_props`` describe everything the
runtime needs (class names, descriptor and parameters, thresholds, atom types, training
summary; written by :func:`insitu.training.export.export_onnx`). Never imports torch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["ModelError", "REQUIRED_KEYS", "SUPPORTED_FORMATS", "LENGTH_UNIT", "open_session",
           "read_metadata", "validate_metadata", "file_sha256"]

REQUIRED_KEYS = ("insitu.format", "insitu.classes", "insitu.descriptor")
SUPPORTED_FORMATS = ("1",)
LENGTH_UNIT = "angstrom"
"""Length unit of every descriptor parameter (cutoffs); models without the key use it."""


class ModelError(ValueError):
    """A model file exists but is not a usable insitu model."""


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_session(path: str | Path, n_threads: int = 1):
    """An onnxruntime session on the CPU with ``n_threads`` intra-op threads (one per MPI
    rank by default). Raises FileNotFoundError or :class:`ModelError` with the fix."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        hint = " (did you mean a .onnx file?)" if not path.suffix else ""
        raise FileNotFoundError(
            f"model file not found: {path}{hint}. Shipped models are in the models/ folder "
            f"(insitu.resources.models_dir()), e.g. crystal-nm.onnx; train one with "
            f"`insitu train`.")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(n_threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any onnxruntime failure means a bad file
        raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                         f"{str(exc)[:300]}). The file may be truncated or corrupt: "
                         f"re-download or re-export it.") from exc


def read_metadata(session, path: str | Path) -> dict:
    """The ``insitu.*`` metadata of a session, JSON-decoded, with the prefix removed;
    checked for the keys and the format version this runtime needs."""
    raw = dict(session.get_modelmeta().custom_metadata_map)
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ModelError(f"{path}: ONNX file lacks insitu metadata {missing}; export it with "
                         f"insitu.training.export.export_onnx (or `insitu train fit`).")
    if raw["insitu.format"] not in SUPPORTED_FORMATS:
        raise ModelError(f"{path}: insitu model format {raw['insitu.format']!r} is not "
                         f"supported (this version reads {SUPPORTED_FORMATS}); upgrade insitu")
    metadata = {}
    for key, value in raw.items():
        if not key.startswith("insitu."):
            continue
        try:
            metadata[key[len("insitu."):]] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            metadata[key[len("insitu."):]] = value
        except RecursionError:
            raise ModelError(f"{path}: metadata {key} is nested too deeply to be an insitu "
                             "model's; the file is corrupt or not an insitu model") from None
    validate_metadata(metadata, path)
    n_out = session.get_outputs()[0].shape[-1]
    if isinstance(n_out, int) and n_out != len(metadata["classes"]):
        raise ModelError(f"{path}: model has {n_out} outputs but metadata lists "
                         f"{len(metadata['classes'])} classes")
    return metadata


def validate_metadata(metadata: dict, path: str | Path) -> None:
    """Check types and ranges of the metadata the runtime relies on (the descriptor's own
    parameters are checked when it is built). Raises :class:`ModelError` naming the file."""
    classes = metadata.get("classes")
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, str) and c.strip() for c in classes)
            or len(set(classes)) != len(classes)):
        raise ModelError(f"{path}: metadata insitu.classes must be a non-empty JSON list of "
                         f"distinct class names, got {str(classes)[:200]}")
    if "unknown" in classes:
        raise ModelError(f"{path}: 'unknown' is reserved for atoms below the thresholds and "
                         "cannot be a class of the model")
    threshold = metadata.get("confidence_threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0.0 <= float(threshold) <= 1.0:
        raise ModelError(f"{path}: metadata insitu.confidence_threshold must be a number in "
                         f"[0, 1], got {str(threshold)[:100]!r}")
    if not isinstance(metadata.get("descriptor"), dict):
        raise ModelError(f"{path}: metadata insitu.descriptor must be a JSON object")
    types = metadata.get("atom_types")
    if types is not None and (not isinstance(types, dict) or not types or not all(
            str(k).isdigit() and int(k) >= 1 and isinstance(v, str) for k, v in types.items())):
        raise ModelError(f"{path}: metadata insitu.atom_types must map LAMMPS atom types "
                         f"(1, 2, ...) to element names, got {str(types)[:200]}")
    unit = metadata.get("length_unit", LENGTH_UNIT)
    if unit != LENGTH_UNIT:
        raise ModelError(f"{path}: metadata insitu.length_unit is {unit!r}; this runtime "
                         f"supports models trained in {LENGTH_UNIT}")
