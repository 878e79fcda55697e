"""Per-atom values of ghost atoms from the ranks that own them: the halo exchange.

Two stages of an analysis read values of the ghost atoms near a rank's own atoms: the
Lechner-Dellago average q-bar reads its neighbours' q_lm (:mod:`insitu.descriptors.steinhardt`)
and a neighbour consensus reads its neighbours' class probabilities
(:mod:`insitu.model.consensus`). Rather than computing those values again for the ghosts
(a shell of extra work, and of extra ghost atoms, that grows with the number of ranks),
each rank sends the values of its own atoms that lie within ``reach`` of another rank's
subdomain (periodic images included; a box test in the cell's fractional coordinates, a
superset of the sphere) to that rank, in one ``alltoall``. Every value a rank reads is then
the one the owner computed for its own atom, so results are the same on any number of
ranks, and the ghost cutoff a rank needs is the search radius, not twice it. An id not
received (an atom that drifted farther than ``reach``) is reported as not found; the caller
leaves it out (consensus) or does not describe the atoms that need it (q-bar).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..locality import find_ids
from .ghost_check import Subdomain
from .options import DEFAULT_SKIN

__all__ = ["Halo", "make_halo"]


class Halo:
    """The exchange callable given to :meth:`insitu.model.Classifier.classify` as
    ``exchange``; collective over ``comm``. ``subdomain`` gives this rank's current
    :class:`Subdomain` (``Subdomain.of(lmp)`` in situ); ``reach``: Angstrom beyond a
    subdomain (the largest radius read + twice the neighbour skin covers the atoms' drift
    between reneighbourings)."""

    def __init__(self, comm, subdomain: Callable[[], Subdomain], reach: float):
        self.comm = comm
        self.subdomain = subdomain
        self.reach = float(reach)

    def __call__(self, needed_ids, ids, positions, *arrays) -> tuple:
        """Rows of ``arrays`` for the global ids ``needed_ids``, from their owners; this rank
        gives those of its atoms (``ids``, ``positions``, ``arrays`` with one row per atom).
        Returns (found (M,) bool, then one (M, ...) array per input array; rows not found
        are zero)."""
        comm = self.comm
        size, rank = comm.Get_size(), comm.Get_rank()
        out = [np.zeros((len(needed_ids),) + a.shape[1:], a.dtype) for a in arrays]
        found = np.zeros(len(needed_ids), bool)
        if size == 1:
            return (found, *out)
        box = self.subdomain()
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
            sends.append((ids[near], *(a[near] for a in arrays)) if near.any() else None)
        received = [r for r in comm.alltoall(sends) if r is not None]
        if received and len(needed_ids):
            rows, found = find_ids(np.concatenate([r[0] for r in received]), needed_ids)
            for k, o in enumerate(out):
                o[found] = np.concatenate([r[k + 1] for r in received])[rows[found]]
        return (found, *out)


def make_halo(classifier, comm, lmp, options, units: str) -> Halo | None:
    """The halo exchange of an attached ``classifier``: when its descriptor reads values
    of its neighbours (q-bar) or it has a neighbour consensus; None when neither. With the
    option ``consensus=no`` the consensus rule is dropped (per-atom labels)."""
    if not options.consensus:
        classifier.consensus = None
    radii = []
    if classifier.descriptor.exchange_cutoff < classifier.descriptor.required_cutoff:
        radii.append(float(classifier.descriptor.search_radius))
    if classifier.consensus is not None:
        radii.append(float(classifier.consensus.cutoff_angstrom))
    if not radii:
        return None
    skin = options.skin if options.skin is not None else DEFAULT_SKIN.get(units, 2.0)
    return Halo(comm, lambda: Subdomain.of(lmp), max(radii) + 2.0 * skin)
