"""Neighbour consensus: class probabilities averaged over an atom's first neighbour shell.

A phase is a property of a neighbourhood, not of one atom: near a transition the thermal
noise of one environment (a superheated crystal, a supercooled liquid) blurs what its
neighbours share. Like the Lechner-Dellago average of the q_lm (Lechner & Dellago, J.
Chem. Phys. 129, 114707 (2008), eq. 6) that the BOO models read, a model with a consensus
rule labels atom i from

    p-bar_i = (1 / |N~(i)|) sum_{j in N~(i)} p_j,    N~(i) = {i} + N_k(i, r_c),

the mean of its own (MC-mean) probabilities and those of its k nearest neighbours within
r_c (:class:`Consensus`; neighbours the descriptor cannot describe are left out, and an
atom it cannot describe itself stays ``unknown``: a gas atom, an atom on top of another).
The mutual information and the novelty stay the atom's own.

The neighbours' probabilities need their own full environments: offline (or for an open
point set without a halo exchange) the ghost atoms within r_c of a centre are classified
too (once per global id; an image of a centre reuses the centre's result), so points are
needed to the descriptor's cutoff + r_c (:meth:`Consensus.required_cutoff`); in situ they
come from the ranks that own them (:mod:`insitu.coupling.halo`) and the ghost cutoff stays
the descriptor's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
from numba import njit

from ..locality import CellList, Points, unique_ids

__all__ = ["Consensus", "ConsensusPlan", "plan_consensus", "consensus_mean",
           "CONSENSUS_METADATA"]

CONSENSUS_METADATA = "consensus"
"""Model metadata key (``insitu.consensus``) of the rule, absent for per-atom labels."""


@dataclass(frozen=True)
class Consensus:
    """The rule: the centre and its ``n_neighbors`` nearest neighbours within
    ``cutoff_angstrom``."""

    n_neighbors: int = 12
    cutoff_angstrom: float = 4.0

    def __post_init__(self) -> None:
        if not 1 <= int(self.n_neighbors) <= 64:
            raise ValueError(f"consensus n_neighbors must be in 1..64, got {self.n_neighbors}")
        if not 0 < float(self.cutoff_angstrom) <= 10.0:
            raise ValueError(f"consensus cutoff_angstrom must be in (0, 10], got "
                             f"{self.cutoff_angstrom}")

    @classmethod
    def from_metadata(cls, d) -> Consensus:
        if not isinstance(d, dict) or set(d) - {"n_neighbors", "cutoff_angstrom"}:
            raise ValueError(f"bad consensus metadata {str(d)[:200]}")
        return cls(int(d.get("n_neighbors", 12)), float(d.get("cutoff_angstrom", 4.0)))

    def to_metadata(self) -> dict:
        return asdict(self)

    def required_cutoff(self, descriptor_cutoff: float) -> float:
        """Radius around a centre inside which every atom must be present: the neighbours'
        own environments reach the descriptor's cutoff beyond r_c."""
        return float(descriptor_cutoff) + float(self.cutoff_angstrom)

    def describe(self) -> str:
        return (f"labels from the probabilities averaged over the atom and its "
                f"{self.n_neighbors} nearest neighbours within {self.cutoff_angstrom:g} A")


@dataclass
class ConsensusPlan:
    """What one classify call evaluates: the centres of ``source``, then the ghost atoms
    whose probabilities the centres' consensus needs (point indices ``extra``, one per
    foreign global id), and, per centre, its consensus members as rows of that sequence
    (CSR: ``offsets``, ``members``, the centre itself first)."""

    source: Points
    extra: np.ndarray
    offsets: np.ndarray
    members: np.ndarray

    @property
    def ghost_ids(self) -> np.ndarray:
        """Global ids of the ghost atoms to classify (or to receive from their owners)."""
        return self.source.ids[self.extra]

    @cached_property
    def points(self) -> Points:
        """``source`` reordered with the ghosts to classify as extra centres after its
        own (when they are classified here)."""
        src, n = self.source, self.source.n_centers
        take = np.concatenate([np.arange(n, dtype=np.int64), self.extra,
                               np.setdiff1d(np.arange(n, len(src.ids)), self.extra,
                                            assume_unique=True)])
        return Points(src.positions[take], src.types[take], src.ids[take],
                      n + len(self.extra))


def plan_consensus(points: Points, rule: Consensus, cells: CellList | None = None
                   ) -> ConsensusPlan:
    """The consensus members of ``points``' centres and the ghost atoms they need.

    A member is found by position; it is then named by its global id, so all images of one
    atom (a periodic frame's, or a rank's ghosts of its own local atoms) share the row of
    the centre with that id, and a foreign ghost is classified once whatever its images."""
    n = points.n_centers
    none = np.zeros(0, np.int64)
    if n == 0:
        return ConsensusPlan(points, none, np.zeros(1, np.int64), none)
    if cells is None or cells.cutoff < rule.cutoff_angstrom:
        cells = CellList.open(points.positions, points.ids, n, rule.cutoff_angstrom)
    nl = cells.query_points(np.arange(n, dtype=np.int64), rule.n_neighbors)
    nl = nl.within(rule.cutoff_angstrom)
    rows = nl.index.copy()  # members among the centres are their own rows
    image = np.nonzero(rows >= n)[0]  # the others: an image of a centre, or foreign
    centre_row, own = points.centre_index.find(points.ids[rows[image]])
    rows[image[own]] = centre_row[own]
    foreign = image[~own]
    _, first, inverse = unique_ids(points.ids[nl.index[foreign]])
    rows[foreign] = n + inverse
    counts = np.diff(nl.offsets) + 1
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    members = np.empty(offsets[-1], np.int64)
    members[offsets[:-1]] = np.arange(n)  # the centre first
    inner = np.ones(len(members), bool)
    inner[offsets[:-1]] = False
    members[inner] = rows
    return ConsensusPlan(points, nl.index[foreign][first], offsets, members)


def consensus_mean(probabilities: np.ndarray, described: np.ndarray, offsets: np.ndarray,
                   members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_centres, K) mean of the ``described`` members' rows of ``probabilities`` (the
    equation of the module docstring) and (n_centres,) the number of described members;
    a centre without any keeps its own row."""
    p = np.ascontiguousarray(probabilities, dtype=np.float32)
    n = len(offsets) - 1
    out = np.empty((n, p.shape[1]), np.float32)
    count = np.zeros(n, np.int64)
    _consensus_mean(p, np.ascontiguousarray(described, dtype=np.bool_),
                    np.ascontiguousarray(offsets, dtype=np.int64),
                    np.ascontiguousarray(members, dtype=np.int64), out, count)
    return out, count


@njit(cache=True)
def _consensus_mean(p, described, offsets, members, out, count):
    # each sum runs in the member order, centre first: independent of the decomposition
    k = p.shape[1]
    acc = np.zeros(k)
    for c in range(len(offsets) - 1):
        acc[:] = 0.0
        m = 0
        for e in range(offsets[c], offsets[c + 1]):
            j = members[e]
            if described[j]:
                m += 1
                for a in range(k):
                    acc[a] += np.float64(p[j, a])
        count[c] = m
        for a in range(k):
            out[c, a] = acc[a] / m if m else p[c, a]
