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

from ..locality import IdIndex
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
        self._in_call = False
        self._boxes = None  # this call's (own Subdomain, every rank's [lo, hi) in rows)

    def for_call(self) -> Halo:
        """This halo for one analysis call (every rank, before the call's first exchange;
        returns self): the subdomains read and gathered at the call's first exchange are
        reused by its others (q_lm, then the consensus's probabilities) and by every
        exchange until the next ``for_call`` (the bridge calls it at each analysis call).
        A halo never given ``for_call`` reads them at each exchange."""
        self._in_call, self._boxes = True, None
        return self

    def _subdomains(self) -> tuple:
        if self._boxes is not None:
            return self._boxes
        box = self.subdomain()
        boxes = np.array(self.comm.allgather(np.concatenate([box.lo, box.hi])))
        if self._in_call:
            self._boxes = (box, boxes)
        return box, boxes

    def __call__(self, needed_ids, needed_positions, ids, *arrays) -> tuple:
        """Rows of ``arrays`` for the ghost atoms ``needed_ids`` (at ``needed_positions``),
        from the ranks that own them; this rank answers for its own atoms (``ids``, their
        global ids or an :class:`~insitu.locality.IdIndex` of them, e.g.
        ``points.centre_index``; ``arrays`` with one row per atom). Each id is asked of the
        ranks whose subdomain, widened by ``drift``, holds the position (wrapped into the
        cell): one ``alltoall`` carries the ids, then one ``Alltoallv`` per array (and one
        for whether the owner had the id) the rows asked for, as raw bytes. Returns (found
        (M,) bool, then one (M, ...) array per input array; rows not found are zero)."""
        comm = self.comm
        size, rank = comm.Get_size(), comm.Get_rank()
        if size == 1:
            return (np.zeros(len(needed_ids), bool),
                    *(np.zeros((len(needed_ids),) + a.shape[1:], a.dtype) for a in arrays))
        # several images of one atom (periodic ghosts) are asked for once
        needed_ids, first, image_of = np.unique(needed_ids, return_index=True,
                                                return_inverse=True)
        box, boxes = self._subdomains()  # boxes: every rank's [lo, hi)
        u = box.fractions(np.asarray(needed_positions)[first])
        u -= np.floor(u) * box.periodic  # ghosts are images: wrap them into the cell
        margin = self.drift / box.spacing
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
        # the answers: a row for every id asked (zeros where this rank does not have it)
        # and whether it had it, as raw buffers (Alltoallv: no pickling of ~2 MB of q_lm)
        n_asked = np.array([0 if a is None else len(a) for a in asked])
        n_wanted = np.array([0 if w is None else len(w) for w in requests])
        wanted = np.concatenate([w for w in requests if w is not None] or [np.zeros(0, int)])
        index = ids if isinstance(ids, IdIndex) else IdIndex(ids)
        rows, have = index.find(wanted)  # rows of ids not here: 0
        received = [_alltoallv(comm, have, n_wanted, n_asked)]
        for a in arrays:
            a = np.asarray(a)
            send = a[rows] if len(a) else np.zeros((len(rows),) + a.shape[1:], a.dtype)
            received.append(_alltoallv(comm, send, n_wanted, n_asked))
        asked_rows = np.concatenate([a for a in asked if a is not None] or [np.zeros(0, int)])
        got, *values = received
        source = np.full(len(needed_ids), -1)  # each distinct id: its received row
        source[asked_rows[got]] = np.flatnonzero(got)
        source = source[image_of]  # each id asked for (images repeat ids)
        found = source >= 0
        # on two ranks every ghost is the other rank's, asked for and answered in order:
        # the rows received are the result, without a gather
        in_order = len(got) == len(source) and bool(np.array_equal(source, np.arange(len(source))))
        results = []
        for value in values:
            if in_order:
                results.append(value)
                continue
            if len(value) == 0:
                results.append(np.zeros((len(source),) + value.shape[1:], value.dtype))
                continue
            result = value[np.maximum(source, 0)]  # one gather, then zero what is missing
            result[~found] = 0
            results.append(result)
        return (found, *results)


def _alltoallv(comm, send: np.ndarray, send_rows: np.ndarray,
               receive_rows: np.ndarray) -> np.ndarray:
    """Rows ``send`` (blocks of ``send_rows[q]`` rows for rank q, in rank order) to every
    rank, and the ``receive_rows[q]`` rows each rank q sends here (in rank order), as raw
    bytes."""
    from mpi4py import MPI

    send = np.ascontiguousarray(send)
    row_bytes = send.dtype.itemsize * int(np.prod(send.shape[1:], dtype=int))
    out = np.empty((int(receive_rows.sum()),) + send.shape[1:], send.dtype)

    def layout(n_rows):
        counts = n_rows * row_bytes
        return counts, np.concatenate([[0], np.cumsum(counts)[:-1]])

    comm.Alltoallv([send.view(np.uint8).reshape(-1), layout(send_rows), MPI.BYTE],
                   [out.view(np.uint8).reshape(-1), layout(receive_rows), MPI.BYTE])
    return out


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
