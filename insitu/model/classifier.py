"""Classify atoms with an insitu ONNX model: features -> probabilities -> labels.

There is one classify path, :meth:`Classifier.classify`, used offline on periodic frames
and in situ on an MPI rank's local + ghost atoms: a frame becomes an open point set with
its periodic images (:meth:`insitu.Frame.to_points`), the descriptor named in the model's
metadata runs chunk by chunk, and each chunk goes through onnxruntime before the next, so
memory is bounded by the batch size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..descriptors import descriptor_from_metadata
from ..locality import NeighborQuery, as_points
from .onnx_format import ModelError, file_sha256, open_session, read_metadata

__all__ = ["Classifier", "ClassificationResult", "labels_from_probabilities",
           "DEFAULT_BATCH_SIZE"]

# Atoms per inference batch: it bounds the memory of a rank. For the paper's CNN one batch
# of 1024 needs ~130 MB of activations (~540 MB at 4096) at the same throughput.
DEFAULT_BATCH_SIZE = 1024


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
    """Per-atom classification.

    classes : the model's class names (K).
    labels : (N,) str, class name or ``"unknown"`` where confidence < threshold.
    label_index : (N,) int, index into ``classes``, -1 for unknown.
    probabilities : (N, K) float32.
    confidence : (N,) float32, the largest probability.
    undescribed : (N,) bool, atoms whose environment the descriptor cannot describe
        (isolated or gas-like atoms, coincident atoms, non-finite features): ``unknown``
        with probabilities and confidence 0.
    timings : seconds spent computing the descriptor and in inference.
    """

    classes: list
    labels: np.ndarray
    label_index: np.ndarray
    probabilities: np.ndarray
    confidence: np.ndarray
    undescribed: np.ndarray
    timings: dict = field(default_factory=dict)

    @classmethod
    def from_probabilities(cls, classes, probabilities, threshold: float,
                           timings: dict | None = None,
                           undescribed: np.ndarray | None = None) -> ClassificationResult:
        probabilities = np.asarray(probabilities, dtype=np.float32).reshape(-1, len(classes))
        bad = ~np.isfinite(probabilities).all(axis=1)
        if undescribed is not None:
            bad |= np.asarray(undescribed, bool)
        if bad.any():
            probabilities = probabilities.copy()
            probabilities[bad] = 0.0
        idx, conf = labels_from_probabilities(probabilities, threshold)
        idx[bad] = -1
        names = np.array(list(classes) + ["unknown"], dtype=object)
        labels = names[np.where(idx < 0, len(classes), idx)].astype(str)
        return cls(list(classes), labels, idx, probabilities, conf, bad, dict(timings or {}))

    def count_array(self) -> np.ndarray:
        """(K + 1,) int64 atoms per class, ``unknown`` last."""
        k = len(self.classes)
        return np.bincount(np.where(self.label_index < 0, k, self.label_index),
                           minlength=k + 1).astype(np.int64)

    def counts(self) -> dict:
        return dict(zip([*self.classes, "unknown"], self.count_array().tolist()))

    def fractions(self) -> dict:
        """Fraction of atoms per class, ``unknown`` included (all 0 for an empty frame)."""
        n = len(self.label_index)
        return {k: (v / n if n else 0.0) for k, v in self.counts().items()}


class Classifier:
    """An insitu ONNX classifier with its descriptor. Use :meth:`load`.

    Attributes: ``classes``, ``descriptor`` (built from the metadata),
    ``confidence_threshold``, ``metadata`` (all insitu.* metadata, JSON decoded), ``path``,
    ``sha256``, ``batch_size``, ``n_threads``, ``atom_types`` (dict or None).
    """

    def __init__(self, session, metadata: dict, path: Path, sha256: str, batch_size: int,
                 n_threads: int):
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
        if tuple(self.descriptor.feature_shape) != self.feature_shape:
            raise ModelError(f"{path}: the model expects features of shape {self.feature_shape} "
                             f"but its descriptor metadata gives "
                             f"{tuple(self.descriptor.feature_shape)}")

    @classmethod
    def load(cls, path, n_threads: int = 1, batch_size: int = DEFAULT_BATCH_SIZE) -> Classifier:
        """Load an ``.onnx`` model written by :func:`insitu.training.export.export_onnx`.

        ``n_threads`` is onnxruntime's intra-op thread count (1 by default: one per MPI rank).
        Raises FileNotFoundError for a missing file and :class:`ModelError` (a ValueError)
        for a corrupt or non-insitu file.
        """
        session = open_session(path, n_threads)
        metadata = read_metadata(session, path)
        return cls(session, metadata, Path(path), file_sha256(path), batch_size, n_threads)

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
        """Raise ValueError if the atoms have types the model does not know about."""
        if not self.atom_types:
            return
        known = {int(k) for k in self.atom_types if str(k).isdigit()}
        if not known:
            return
        unknown = sorted(set(np.unique(np.asarray(types)).tolist()) - known)
        if unknown:
            raise ValueError(f"atom types {unknown} are not in the model {self.path.name} "
                             f"(trained with types {self.atom_types})")

    def classify(self, system, threshold: float | None = None,
                 neighbors: NeighborQuery | None = None,
                 chunk_size: int | None = None) -> ClassificationResult:
        """Classify every centre of ``system``: an :class:`insitu.Frame` (all its atoms) or
        :class:`insitu.locality.Points` (the first ``n_centers``, e.g. a rank's local atoms
        among local + ghost). ``neighbors`` may be a query shared with other analyses."""
        points = as_points(system, self.descriptor.required_cutoff) if neighbors is None \
            else neighbors.points
        self.check_types(points.types[:points.n_centers])
        n = points.n_centers
        proba = np.empty((n, len(self.classes)), dtype=np.float32)
        undescribed = np.zeros(n, bool)
        t_desc = t_inf = 0.0
        t0 = time.perf_counter()
        if n:
            chunks = self.descriptor.iter_compute(points, neighbors,
                                                  int(chunk_size or self.batch_size))
            for start, stop, features in chunks:
                t1 = time.perf_counter()
                t_desc += t1 - t0
                bad = ~np.isfinite(features.reshape(len(features), -1)).all(axis=1)
                if bad.any():  # NaN marks an environment the descriptor cannot describe
                    features = np.where(bad.reshape((-1,) + (1,) * (features.ndim - 1)),
                                        0, features)
                    undescribed[start:stop] = bad
                proba[start:stop] = self.predict_proba(features)
                t0 = time.perf_counter()
                t_inf += t0 - t1
            t_desc += time.perf_counter() - t0
        thr = self.confidence_threshold if threshold is None else float(threshold)
        return ClassificationResult.from_probabilities(
            self.classes, proba, thr, {"descriptor": t_desc, "inference": t_inf}, undescribed)

    def summary(self) -> str:
        d = self.metadata.get("descriptor", {})
        acc = self.metadata.get("validation_accuracy")
        return (f"{self.path.name}: classes {self.classes}, descriptor {d.get('kind')}, "
                f"threshold {self.confidence_threshold}, validation accuracy {acc}")

    def __repr__(self) -> str:
        return f"Classifier({str(self.path)!r}, classes={self.classes})"
