"""Class probabilities of ghost atoms from the ranks that own them: the halo exchange of a
neighbour consensus (:mod:`insitu.model.consensus`).

A rank's consensus reads the probabilities of the ghost atoms within r_c of its atoms.
Rather than classifying those ghosts again (a shell of extra work that grows with the
number of ranks), each rank sends the probabilities of its own atoms that lie within
``reach`` of another rank's subdomain (periodic images included; a box test in the
cell's fractional coordinates, a superset of the sphere) to that rank, in one
``alltoall``. Every probability a rank reads is then the one the owner computed for its
own atom, so the consensus is the same on any number of ranks, and the ghost cutoff a rank
needs stays the descriptor's. An id not received (an atom that drifted farther than
``reach``) is left out of its neighbours' means by the caller.
"""

from __future__ import annotations

import numpy as np

from ..locality import find_ids
from .ghost_check import Subdomain
from .options import DEFAULT_SKIN

__all__ = ["ProbabilityHalo", "consensus_halo"]


class ProbabilityHalo:
    """Callable given to :meth:`insitu.model.Classifier.classify` as ``exchange``;
    collective over ``comm``. ``reach``: Angstrom beyond a subdomain (the consensus
    radius + the neighbour skin covers the atoms' drift between reneighbourings)."""

    def __init__(self, comm, lmp, reach: float):
        self.comm = comm
        self.lmp = lmp
        self.reach = float(reach)

    def __call__(self, needed_ids, ids, positions, probabilities, described) -> tuple:
        """Probabilities (and described flags) of the global ids ``needed_ids`` from their
        owners, this rank giving those of its atoms (``ids``, ``positions``,
        ``probabilities``, ``described``). Returns (found (M,) bool, probabilities
        (M, K), described (M,) bool)."""
        comm = self.comm
        size, rank = comm.Get_size(), comm.Get_rank()
        k = probabilities.shape[1]
        if size == 1:
            return (np.zeros(len(needed_ids), bool), np.zeros((len(needed_ids), k), np.float32),
                    np.zeros(len(needed_ids), bool))
        box = Subdomain.of(self.lmp)
        boxes = np.array(comm.allgather(np.concatenate([box.lo, box.hi])))  # [lo, hi) each
        u = box.fractions(positions)
        sends = []
        for q in range(size):
            if q == rank or len(ids) == 0:
                sends.append(None)
                continue
            lo, hi = boxes[q, :3], boxes[q, 3:]
            gap = np.full(u.shape, np.inf)
            for shift in (-1.0, 0.0, 1.0):  # periodic images across the box edges
                v = u + shift * box.periodic
                gap = np.minimum(gap, np.maximum(np.maximum(lo - v, v - hi), 0.0))
            near = np.all(gap * box.spacing <= self.reach, axis=1)
            sends.append((ids[near], probabilities[near], described[near]) if near.any()
                         else None)
        received = [r for r in comm.alltoall(sends) if r is not None]
        found = np.zeros(len(needed_ids), bool)
        out_p = np.zeros((len(needed_ids), k), np.float32)
        out_d = np.zeros(len(needed_ids), bool)
        if received and len(needed_ids):
            rows, found = find_ids(np.concatenate([r[0] for r in received]), needed_ids)
            out_p[found] = np.concatenate([r[1] for r in received])[rows[found]]
            out_d[found] = np.concatenate([r[2] for r in received])[rows[found]]
        return found, out_p, out_d


def consensus_halo(classifier, comm, lmp, options, units: str) -> ProbabilityHalo | None:
    """The halo exchange of an attached ``classifier`` with a neighbour consensus (None
    without one); with the option ``consensus=no`` the rule is dropped (per-atom labels)."""
    if not options.consensus:
        classifier.consensus = None
    if classifier.consensus is None:
        return None
    skin = options.skin if options.skin is not None else DEFAULT_SKIN.get(units, 2.0)
    return ProbabilityHalo(comm, lmp, classifier.consensus.cutoff_angstrom + 2.0 * skin)
