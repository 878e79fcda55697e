"""Per-rank analysis: points -> neighbours -> descriptor -> probabilities -> counts.

Knows nothing about LAMMPS or MPI: it receives one rank's local + ghost atoms as arrays
(the first ``n_centers`` are the atoms to classify) and returns per-atom labels and the
per-class counts that the caller reduces across ranks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from insitu.runtime import labels_from_probabilities

# The neighbour search runs chunk by chunk inside the descriptor (memory stays bounded
# by the chunk), so its time is part of "descriptor".
STAGES = ("extract", "descriptor", "inference", "reduce", "total")


@dataclass
class RankResult:
    """Labels of one rank's local atoms and the partial sums to reduce across ranks.

    label_index: (n_centers,) int32, index into the model's classes, -1 for unknown.
    confidence: (n_centers,) float32, the largest class probability.
    counts: (K + 1,) int64, atoms per class, the last entry is ``unknown``.
    confidence_sum: sum of ``confidence`` over the local atoms.
    timings: seconds spent per stage on this rank.
    """

    label_index: np.ndarray
    confidence: np.ndarray
    counts: np.ndarray
    confidence_sum: float
    timings: dict = field(default_factory=dict)


def analyse_points(classifier, positions: np.ndarray, types: np.ndarray, ids: np.ndarray,
                   n_centers: int, chunk_size: int | None = None,
                   threshold: float | None = None) -> RankResult:
    """Classify the first ``n_centers`` of an open set of points (local + ghost atoms).

    Memory is bounded by ``chunk_size`` (default: the classifier's batch size): the
    descriptor of one chunk is computed, classified and dropped before the next.
    The neighbour search runs inside the descriptor's chunk iterator, so its time is
    part of ``descriptor``.
    """
    n_classes = len(classifier.classes)
    chunk = int(chunk_size or getattr(classifier, "batch_size", 1024))
    thr = classifier.confidence_threshold if threshold is None else float(threshold)
    label_index = np.full(n_centers, -1, dtype=np.int32)
    confidence = np.zeros(n_centers, dtype=np.float32)
    t_desc = t_inf = 0.0
    t0 = time.perf_counter()
    if n_centers > 0:
        chunks = classifier.descriptor.iter_open(positions, types, ids, n_centers, chunk)
        for start, stop, features in chunks:
            t1 = time.perf_counter()
            t_desc += t1 - t0
            proba = classifier.predict_proba(features)
            idx, conf = labels_from_probabilities(proba, thr)
            label_index[start:stop] = idx.astype(np.int32)
            confidence[start:stop] = conf
            t0 = time.perf_counter()
            t_inf += t0 - t1
        t_desc += time.perf_counter() - t0
    counts = np.bincount(np.where(label_index < 0, n_classes, label_index),
                         minlength=n_classes + 1).astype(np.int64)
    timings = {"descriptor": t_desc, "inference": t_inf}
    return RankResult(label_index, confidence, counts, float(confidence.sum(dtype=np.float64)),
                      timings)
