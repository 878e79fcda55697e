"""Per-atom classification results: labels from (mean) probabilities and the uncertainty
criteria (confidence, mutual information, novelty) that make an atom ``unknown``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .mc_dropout import entropy_bits

__all__ = ["ClassificationResult", "labels_from_probabilities"]


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
    mutual_information : (N,) float32, bits (ARISE Supp. Eq. 5); 0 with one pass and for
        undescribed atoms.
    predictive_entropy : (N,) float32, bits, entropy of the (mean) probabilities.
    mi_threshold : MI above which an atom is ``unknown`` (None: no MI criterion).
    mc_passes : number of stochastic passes T (1: dropout off).
    novelty : (N,) float32, the feature-space novelty (:mod:`insitu.model.novelty`; NaN
        for undescribed atoms), None for a model without it.
    novelty_threshold : novelty above which an atom is ``unknown`` (None: no criterion).
    own_probabilities : (N, K) float32, each atom's own probabilities where
        ``probabilities`` are a neighbour consensus (:mod:`.consensus`), else None.
    """

    classes: list
    labels: np.ndarray
    label_index: np.ndarray
    probabilities: np.ndarray
    confidence: np.ndarray
    undescribed: np.ndarray
    timings: dict = field(default_factory=dict)
    mutual_information: np.ndarray | None = None
    predictive_entropy: np.ndarray | None = None
    mi_threshold: float | None = None
    mc_passes: int = 1
    novelty: np.ndarray | None = None
    novelty_threshold: float | None = None
    own_probabilities: np.ndarray | None = None

    @classmethod
    def from_probabilities(cls, classes, probabilities, threshold: float,
                           timings: dict | None = None,
                           undescribed: np.ndarray | None = None,
                           mutual_information: np.ndarray | None = None,
                           mi_threshold: float | None = None,
                           mc_passes: int = 1, novelty: np.ndarray | None = None,
                           novelty_threshold: float | None = None) -> ClassificationResult:
        """Labels from (mean) probabilities: argmax, ``unknown`` below ``threshold``, above
        ``mi_threshold`` in mutual information (bits), above ``novelty_threshold`` in
        ``novelty``, or where ``undescribed``."""
        probabilities = np.asarray(probabilities, dtype=np.float32).reshape(-1, len(classes))
        bad = ~np.isfinite(probabilities).all(axis=1)
        if undescribed is not None:
            bad |= np.asarray(undescribed, bool)
        mi = np.zeros(len(probabilities)) if mutual_information is None \
            else np.asarray(mutual_information, np.float64).reshape(-1)
        bad |= ~np.isfinite(mi)
        if bad.any():
            probabilities = probabilities.copy()
            probabilities[bad] = 0.0
        mi = np.where(bad, 0.0, mi).astype(np.float32)
        entropy = entropy_bits(probabilities).astype(np.float32)
        idx, conf = labels_from_probabilities(probabilities, threshold)
        idx[bad] = -1
        if mi_threshold is not None:
            idx[mi > mi_threshold] = -1
        if novelty is not None:  # not defined where the descriptor is not: NaN
            novelty = np.where(bad, np.nan, np.asarray(novelty, np.float64).reshape(-1))
            novelty = novelty.astype(np.float32)
            if novelty_threshold is not None:
                idx[novelty > novelty_threshold] = -1
        names = np.array(list(classes) + ["unknown"], dtype=object)
        labels = names[np.where(idx < 0, len(classes), idx)].astype(str)
        return cls(list(classes), labels, idx, probabilities, conf, bad, dict(timings or {}),
                   mi, entropy, mi_threshold, int(mc_passes), novelty, novelty_threshold)

    @property
    def uncertain(self) -> np.ndarray:
        """(N,) bool, MI above the model's threshold (all False without one)."""
        if self.mi_threshold is None:
            return np.zeros(len(self.label_index), bool)
        return self.mutual_information > self.mi_threshold

    @property
    def novel(self) -> np.ndarray:
        """(N,) bool, novelty above the model's threshold (all False without one)."""
        if self.novelty is None or self.novelty_threshold is None:
            return np.zeros(len(self.label_index), bool)
        return self.novelty > self.novelty_threshold

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
