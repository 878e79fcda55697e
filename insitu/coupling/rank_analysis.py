"""One rank's share of an analysis step: LAMMPS arrays -> points -> classification ->
partial sums. The classification itself is the one offline path,
:meth:`insitu.model.Classifier.classify`, on the rank's local + ghost atoms."""

from __future__ import annotations

import numpy as np

from ..locality import Points
from .compat import extract_atom_copy

__all__ = ["STAGES", "extract_points", "partial_sums"]

# The neighbour search runs chunk by chunk inside the descriptor (memory stays bounded
# by the chunk), so its time is part of "descriptor"; "consensus" is the neighbour
# consensus's plan, halo exchange and means (0 without one).
STAGES = ("extract", "descriptor", "inference", "consensus", "reduce", "total")


def extract_points(lmp) -> Points:
    """Positions, types and ids of this rank's local + ghost atoms, copied afresh (LAMMPS
    reallocates and sorts between steps); the local atoms are the centres."""
    nlocal = int(lmp.extract_setting("nlocal"))
    nall = nlocal + int(lmp.extract_setting("nghost"))
    if nall == 0:
        return Points(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
    return Points(extract_atom_copy(lmp, "x", nall, 3, np.float64),
                  extract_atom_copy(lmp, "type", nall, 1, np.int64),
                  extract_atom_copy(lmp, "id", nall, 1, np.int64), nlocal)


def partial_sums(result, screened=(0, 0)) -> np.ndarray:
    """[atoms per class..., unknown, atoms not describable, sum of confidences, atoms a
    screening network settled, atoms it saw (``screened``)] of this rank, to sum over
    ranks."""
    return np.concatenate([result.count_array().astype(np.float64),
                           [float(result.undescribed.sum()),
                            float(result.confidence.sum(dtype=np.float64)), *screened]])
