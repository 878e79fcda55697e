"""Per-atom values of ghost atoms from the ranks that own them: the halo exchange.

Two stages of an analysis read values of the ghost atoms near a rank's own atoms: the
Lechner-Dellago average q-bar reads its neighbours' q_lm (:mod:`insitu.descriptors.steinhardt`)
and a neighbour consensus reads its neighbours' class probabilities
(:mod:`insitu.model.consensus`). Rather than computing those values again for the ghosts
(a shell of extra work, and of extra ghost atoms, that grows with the number of ranks),
each rank asks the ranks that own those ghosts (the subdomain holding the ghost's position,
wrapped into the cell, give or take the atoms' drift) for the rows it needs, and answers
their questions about its own atoms. Every value a rank reads is then the one the owner
computed for its own atom, so results are the same on any number of ranks, and the ghost
cutoff a rank needs is the search radius, not twice it. An id nobody answers for (an atom
that drifted farther than expected) is reported as not found; the caller leaves it out
(consensus) or does not describe the atoms that need it (q-bar).
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
    :class:`Subdomain` (``Subdomain.of(lmp)`` in situ); ``drift``: Angstrom an atom may lie
    outside its owner's subdomain (between reneighbourings up to half the neighbour skin;
    the whole skin is asked, to be safe)."""

    def __init__(self, comm, subdomain: Callable[[], Subdomain], drift: float):
        self.comm = comm
        self.subdomain = subdomain
        self.drift = float(drift)

    def __call__(self, needed_ids, needed_positions, ids, *arrays) -> tuple:
        """Rows of ``arrays`` for the ghost atoms ``needed_ids`` (at ``needed_positions``),
        from the ranks that own them; this rank answers for its own atoms (``ids``,
        ``arrays`` with one row per atom). Each id is asked of the ranks whose subdomain,
        widened by ``drift``, holds the position (wrapped into the cell): two
        ``alltoall`` calls carry the ids and the rows asked for, nothing else. Returns
        (found (M,) bool, then one (M, ...) array per input array; rows not found are
        zero)."""
        comm = self.comm
        size, rank = comm.Get_size(), comm.Get_rank()
        if size == 1:
            return (np.zeros(len(needed_ids), bool),
                    *(np.zeros((len(needed_ids),) + a.shape[1:], a.dtype) for a in arrays))
        # several images of one atom (periodic ghosts) are asked for once
        needed_ids, first, image_of = np.unique(needed_ids, return_index=True,
                                                return_inverse=True)
        box = self.subdomain()
        boxes = np.array(comm.allgather(np.concatenate([box.lo, box.hi])))  # [lo, hi) each
        u = box.fractions(np.asarray(needed_positions)[first])
        u -= np.floor(u) * box.periodic  # ghosts are images: wrap them into the cell
        margin = self.drift / box.spacing
        out = [np.zeros((len(needed_ids),) + a.shape[1:], a.dtype) for a in arrays]
        found = np.zeros(len(needed_ids), bool)
        asked = []
        for q in range(size):
            if q == rank or len(needed_ids) == 0:
                asked.append(None)
                continue
            lo, hi = boxes[q, :3] - margin, boxes[q, 3:] + margin
            inside = np.zeros(u.shape, bool)  # per axis: a subdomain at the other edge
            for shift in (-1.0, 0.0, 1.0):  # of the cell holds it through the boundary
                v = u + shift * box.periodic
                inside |= (v >= lo) & (v < hi)
            inside = inside.all(axis=1)
            asked.append(np.flatnonzero(inside) if inside.any() else None)
        requests = comm.alltoall([None if a is None else needed_ids[a] for a in asked])
        replies = []
        order = None  # own ids sorted once, for all ranks' questions
        for wanted in requests:
            if wanted is None:
                replies.append(None)
                continue
            if order is None:
                order = np.argsort(ids, kind="stable")
            rows, have = find_ids(ids, wanted, order)
            replies.append((have, *(a[rows[have]] for a in arrays)) if have.any() else None)
        for rows, reply in zip(asked, comm.alltoall(replies)):
            if rows is None or reply is None:
                continue
            have = reply[0]
            found[rows[have]] = True
            for o, value in zip(out, reply[1:]):
                o[rows[have]] = value
        return (found[image_of], *(o[image_of] for o in out))


def make_halo(classifier, comm, lmp, options, units: str) -> Halo | None:
    """The halo exchange of an attached ``classifier``: when its descriptor reads values
    of its neighbours (q-bar) or it has a neighbour consensus; None when neither. With the
    option ``consensus=no`` the consensus rule is dropped (per-atom labels)."""
    if not options.consensus:
        classifier.consensus = None
    descriptor = classifier.descriptor
    if classifier.consensus is None and descriptor.exchange_cutoff >= descriptor.required_cutoff:
        return None
    skin = options.skin if options.skin is not None else DEFAULT_SKIN.get(units, 2.0)
    return Halo(comm, lambda: Subdomain.of(lmp), skin)
