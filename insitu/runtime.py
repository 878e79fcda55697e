"""Model runtime: load an insitu ONNX model and classify atoms. Never imports torch.

The ``.onnx`` file is self-describing: its ``metadata_props`` hold the class names, the
descriptor type with all its parameters, the confidence threshold and a training summary
(see :mod:`insitu.training.export`). ``Classifier.load(path).classify(frame)`` needs nothing
else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Classifier", "ClassificationResult", "ModelError", "labels_from_probabilities"]

REQUIRED_KEYS = ("insitu.format", "insitu.classes", "insitu.descriptor")
SUPPORTED_FORMATS = ("1",)
# Atoms per inference batch: it bounds the memory of a rank. For the paper's CNN one batch
# of 1024 needs ~130 MB of activations (~540 MB at 4096) at the same throughput.
DEFAULT_BATCH_SIZE = 1024


class ModelError(ValueError):
    """A model file exists but is not a usable insitu model."""


def labels_from_probabilities(probabilities: np.ndarray, threshold: float):
    """(label_index (N,) int, -1 below ``threshold``; confidence (N,) float32)."""
    probabilities = np.asarray(probabilities)
    if len(probabilities) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    index = np.argmax(probabilities, axis=1).astype(np.int64)
    confidence = probabilities[np.arange(len(index)), index].astype(np.float32)
    index[confidence < threshold] = -1
    return index, confidence


@dataclass
class ClassificationResult:
    """Per-atom classification of one frame.

    classes : the model's class names (K).
    labels : (N,) str, class name or ``"unknown"`` where confidence < threshold.
    label_index : (N,) int, index into ``classes``, -1 for unknown.
    probabilities : (N, K) float32.
    confidence : (N,) float32, the largest probability.
    """

    classes: list
    labels: np.ndarray
    label_index: np.ndarray
    probabilities: np.ndarray
    confidence: np.ndarray

    def counts(self) -> dict:
        k = len(self.classes)
        c = np.bincount(np.where(self.label_index < 0, k, self.label_index), minlength=k + 1)
        out = {name: int(c[i]) for i, name in enumerate(self.classes)}
        out["unknown"] = int(c[k])
        return out

    def fractions(self) -> dict:
        """Fraction of atoms per class, ``unknown`` included (all 0 for an empty frame)."""
        n = len(self.label_index)
        return {k: (v / n if n else 0.0) for k, v in self.counts().items()}

    @classmethod
    def from_probabilities(cls, classes, probabilities, threshold) -> ClassificationResult:
        probabilities = np.asarray(probabilities, dtype=np.float32).reshape(-1, len(classes))
        idx, conf = labels_from_probabilities(probabilities, threshold)
        names = np.array(list(classes) + ["unknown"], dtype=object)
        labels = names[np.where(idx < 0, len(classes), idx)].astype(str)
        return cls(list(classes), labels, idx, probabilities, conf)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Classifier:
    """An insitu ONNX classifier with its descriptor.

    Use :meth:`load`. Attributes: ``classes``, ``descriptor`` (built from the metadata),
    ``confidence_threshold``, ``metadata`` (all insitu.* metadata, JSON decoded), ``path``,
    ``sha256``, ``batch_size``, ``n_threads``, ``atom_types`` (dict or None).
    """

    def __init__(self, session, metadata: dict, path: Path, sha256: str, batch_size: int,
                 n_threads: int):
        from .descriptors import descriptor_from_metadata

        self.session = session
        self.metadata = metadata
        self.path = Path(path)
        self.sha256 = sha256
        self.batch_size = int(batch_size)
        self.n_threads = int(n_threads)
        self.classes = [str(c) for c in metadata["classes"]]
        self.confidence_threshold = float(metadata.get("confidence_threshold", 0.5))
        self.atom_types = metadata.get("atom_types")
        try:
            self.descriptor = descriptor_from_metadata(metadata["descriptor"])
        except Exception as exc:  # noqa: BLE001 - report which model carries the bad data
            raise ModelError(f"{path}: cannot build the descriptor from the model's metadata "
                             f"({exc}); re-export the model with this insitu version") from exc
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = session.get_outputs()[0].name
        self.feature_shape = tuple(int(s) for s in inp.shape[1:])
        desc_shape = getattr(self.descriptor, "feature_shape", None)
        if desc_shape is not None and tuple(desc_shape) != self.feature_shape:
            raise ModelError(f"{path}: the model expects features of shape {self.feature_shape} "
                             f"but its descriptor metadata gives {tuple(desc_shape)}")

    @classmethod
    def load(cls, path, n_threads: int = 1, batch_size: int = DEFAULT_BATCH_SIZE) -> Classifier:
        """Load an ``.onnx`` model written by :func:`insitu.training.export.export_onnx`.

        ``n_threads`` is onnxruntime's intra-op thread count (1 by default: one per MPI rank).
        Raises FileNotFoundError for a missing file and :class:`ModelError` (a ValueError)
        for a corrupt or non-insitu file.
        """
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            hint = ""
            if not path.suffix:
                hint = " (did you mean a .onnx file?)"
            raise FileNotFoundError(
                f"model file not found: {path}{hint}. Shipped models are in the repository's "
                f"models/ folder (e.g. models/crystal-nm.onnx); train one with `insitu train`.")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(n_threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), sess_options=opts,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: "
                             f"{str(exc)[:300]}). The file may be truncated or corrupt: "
                             f"re-download or re-export it.") from exc
        raw = dict(session.get_modelmeta().custom_metadata_map)
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise ModelError(f"{path}: ONNX file lacks insitu metadata {missing}; export it with "
                             f"insitu.training.export.export_onnx (or `insitu train fit`).")
        if raw["insitu.format"] not in SUPPORTED_FORMATS:
            raise ModelError(f"{path}: insitu model format {raw['insitu.format']!r} is not "
                             f"supported (this version reads {SUPPORTED_FORMATS}); upgrade insitu")
        metadata = {}
        for k, v in raw.items():
            if not k.startswith("insitu."):
                continue
            key = k[len("insitu."):]
            try:
                metadata[key] = json.loads(v)
            except (json.JSONDecodeError, TypeError):
                metadata[key] = v
        if not isinstance(metadata.get("classes"), list) or not metadata["classes"]:
            raise ModelError(f"{path}: metadata insitu.classes must be a non-empty JSON list")
        n_out = session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(metadata["classes"]):
            raise ModelError(f"{path}: model has {n_out} outputs but metadata lists "
                             f"{len(metadata['classes'])} classes")
        return cls(session, metadata, path, _sha256(path), batch_size, n_threads)

    # --- inference -------------------------------------------------------------------------
    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (n, K) float32 of per-atom features (n, *feature_shape),
        run in batches of ``batch_size``."""
        x = np.asarray(features)
        if x.shape[1:] != self.feature_shape:
            raise ValueError(f"features of shape {x.shape[1:]} per atom, the model "
                             f"{self.path.name} expects {self.feature_shape}")
        n = len(x)
        out = np.empty((n, len(self.classes)), dtype=np.float32)
        for s in range(0, n, self.batch_size):
            chunk = np.ascontiguousarray(x[s:s + self.batch_size], dtype=np.float32)
            out[s:s + len(chunk)] = self.session.run([self.output_name],
                                                     {self.input_name: chunk})[0]
        return out

    def check_types(self, types) -> None:
        """Raise ValueError if the frame has atom types the model does not know about."""
        if not self.atom_types:
            return
        known = {int(k) for k in self.atom_types if str(k).isdigit()}
        if not known:
            return
        unknown = sorted(set(np.unique(np.asarray(types)).tolist()) - known)
        if unknown:
            raise ValueError(f"atom types {unknown} are not in the model {self.path.name} "
                             f"(trained with types {self.atom_types})")

    def probabilities(self, frame, chunk_size: int | None = None) -> np.ndarray:
        """Probabilities (N, K) for all atoms of a periodic/open ``Frame``; memory bounded by
        the chunk size (descriptor of one chunk at a time)."""
        self.check_types(frame.types)
        n = len(frame)
        out = np.empty((n, len(self.classes)), dtype=np.float32)
        if n == 0:
            return out
        chunk = int(chunk_size or self.batch_size)
        if hasattr(self.descriptor, "iter_compute"):
            chunks = self.descriptor.iter_compute(frame, chunk)
        else:
            points, types, ids = _frame_points(frame, float(self.descriptor.required_cutoff))
            chunks = self.descriptor.iter_open(points, types, ids, n, chunk)
        for start, stop, feats in chunks:
            out[start:stop] = self.predict_proba(feats)
        return out

    def classify(self, frame, chunk_size: int | None = None,
                 threshold: float | None = None) -> ClassificationResult:
        """Classify every atom of ``frame`` (an :class:`insitu.Frame`)."""
        proba = self.probabilities(frame, chunk_size)
        thr = self.confidence_threshold if threshold is None else float(threshold)
        return ClassificationResult.from_probabilities(self.classes, proba, thr)

    def summary(self) -> str:
        d = self.metadata.get("descriptor", {})
        acc = self.metadata.get("validation_accuracy")
        return (f"{self.path.name}: classes {self.classes}, descriptor {d.get('kind')}, "
                f"threshold {self.confidence_threshold}, validation accuracy {acc}")

    def __repr__(self) -> str:
        return f"Classifier({str(self.path)!r}, classes={self.classes})"


def _frame_points(frame, cutoff: float):
    """Atoms of the frame first (in frame order), then the periodic images within ``cutoff``
    of the cell: the open point set on which the descriptors run (as on an MPI rank)."""
    from .neighbors import _periodic_images

    points, orig = _periodic_images(frame.positions, frame.cell, frame.pbc, cutoff)
    return points, frame.types[orig], frame.ids[orig]
