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
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..locality import IdIndex, unique_ids
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
        self._request_kept = None  # this call's first request, for the exchanges after it
        self.n_requests = 0  # requests sent (an exchange reusing one sends none)

    def for_call(self) -> Halo:
        """This halo for one analysis call (every rank, before the call's first exchange;
        returns self): the subdomains read and gathered at the call's first exchange are
        reused by its others (q_lm, then the consensus's probabilities) and by every
        exchange until the next ``for_call`` (the bridge calls it at each analysis call).
        A halo never given ``for_call`` reads them at each exchange."""
        self._in_call, self._boxes, self._request_kept = True, None, None
        return self

    def _subdomains(self) -> tuple:
        if self._boxes is not None:
            return self._boxes
        box = self.subdomain()
        boxes = np.array(self.comm.allgather(np.concatenate([box.lo, box.hi])))
        if self._in_call:
            self._boxes = (box, boxes)
        return box, boxes

    def __call__(self, needed_ids, needed_positions, ids, *arrays, into=None) -> tuple:
        """Rows of ``arrays`` for the ghost atoms ``needed_ids`` (at ``needed_positions``),
        from the ranks that own them; this rank answers for its own atoms (``ids``, their
        global ids or an :class:`~insitu.locality.IdIndex` of them, e.g.
        ``points.centre_index``; ``arrays`` with one row per atom). Each id is asked of the
        ranks whose subdomain, widened by ``drift``, holds the position (wrapped into the
        cell): one ``alltoall`` carries the ids, then one ``Alltoallv`` the rows asked for
        (every array's row and whether the owner had the id, packed as raw bytes). A later
        exchange of the same call that asks the same ``ids`` object for a subset of those
        ids on every rank reuses the request (one ``allreduce`` agrees on it): the
        consensus's probabilities after the q_lm of q-bar. Returns (found (M,) bool, then
        one (M, ...) array per input array; rows not found are zero). ``into``:
        (destinations, rows) to write the rows found straight into ``destinations[k][rows]``
        instead (one pass from what was received; rows not found are left as they are),
        returned in place of new arrays."""
        comm = self.comm
        if comm.Get_size() == 1:
            if into is not None:
                return (np.zeros(len(needed_ids), bool), *into[0])
            return (np.zeros(len(needed_ids), bool),
                    *(np.zeros((len(needed_ids),) + a.shape[1:], a.dtype) for a in arrays))
        # several images of one atom (periodic ghosts) are asked for once
        distinct, first, image_of = unique_ids(needed_ids)
        request = self._kept_request(distinct, ids)
        if request is None:
            request = self._request(distinct, np.asarray(needed_positions)[first], ids)
            if self._in_call:
                self._request_kept = request
        got, values = request.fetch(comm, arrays)
        source = np.full(len(request.distinct_ids), -1)  # each id asked: its received row
        source[request.asked_rows[got]] = np.flatnonzero(got)
        if len(distinct) != len(request.distinct_ids):  # a subset of a kept request
            source = source[np.searchsorted(request.distinct_ids, distinct)]
        source = source[image_of]  # each id asked for (images repeat ids)
        found = source >= 0
        if into is None:  # new arrays, one row per id asked, zero where not found
            destinations = [np.zeros((len(source),) + np.shape(a)[1:], np.asarray(a).dtype)
                            for a in arrays]
            rows = np.arange(len(source), dtype=np.int64)
        else:
            destinations, rows = into
            rows = np.asarray(rows, dtype=np.int64)
        for value, destination in zip(values, destinations):
            _copy_rows(_as_rows(value), source, _as_rows(destination), rows)
        return (found, *destinations)

    def _kept_request(self, distinct: np.ndarray, ids) -> _Request | None:
        """This call's kept request when every rank asks the same ``ids`` object for a
        subset of its ids (collective once a request is kept: every rank kept one)."""
        kept = self._request_kept
        if kept is None:
            return None
        covered = ids is kept.ids and len(distinct) <= len(kept.distinct_ids)
        if covered and len(distinct):
            at = np.searchsorted(kept.distinct_ids, distinct)
            covered = bool(at[-1] < len(kept.distinct_ids)) and \
                bool(np.array_equal(kept.distinct_ids[at], distinct))
        from mpi4py import MPI

        return kept if self.comm.allreduce(covered, op=MPI.LAND) else None

    def _request(self, distinct: np.ndarray, positions: np.ndarray, ids) -> _Request:
        """Ask the owners of ``distinct`` (sorted, at ``positions``) for their rows: which
        ranks may own each id, one ``alltoall`` of the ids, and the rows of the ids other
        ranks ask here."""
        comm = self.comm
        size, rank = comm.Get_size(), comm.Get_rank()
        self.n_requests += 1
        box, boxes = self._subdomains()  # boxes: every rank's [lo, hi)
        u = box.fractions(positions)
        u -= np.floor(u) * box.periodic  # ghosts are images: wrap them into the cell
        margin = self.drift / box.spacing
        owners = _possible_owners(u, boxes[:, :3] - margin, boxes[:, 3:] + margin,
                                  box.periodic, rank)
        asked = [np.flatnonzero(owners[:, q]) if q != rank and len(distinct) else None
                 for q in range(size)]
        asked = [a if a is not None and len(a) else None for a in asked]
        requests = comm.alltoall([None if a is None else distinct[a] for a in asked])
        n_asked = np.array([0 if a is None else len(a) for a in asked])
        n_wanted = np.array([0 if w is None else len(w) for w in requests])
        wanted = np.concatenate([w for w in requests if w is not None] or [np.zeros(0, int)])
        index = ids if isinstance(ids, IdIndex) else IdIndex(ids)
        rows, have = index.find(wanted)  # rows of ids not here: 0
        asked_rows = np.concatenate([a for a in asked if a is not None] or [np.zeros(0, int)])
        return _Request(ids, distinct, asked_rows, n_asked, n_wanted, rows, have)


@dataclass
class _Request:
    """Who asked whom for what in one exchange: ``distinct_ids`` asked for (sorted) and
    ``asked_rows``, their positions in it in the order the answers arrive (``n_asked``
    per rank); the owner side: ``n_wanted`` ids per rank asked here, their ``rows`` in
    ``ids`` and whether this rank ``have`` them."""

    ids: object
    distinct_ids: np.ndarray
    asked_rows: np.ndarray
    n_asked: np.ndarray
    n_wanted: np.ndarray
    rows: np.ndarray
    have: np.ndarray

    def fetch(self, comm, arrays) -> tuple[np.ndarray, list]:
        """(whether the owner had each id asked, in ``asked_rows`` order; the rows of
        ``arrays`` received, as views of one buffer): every array's rows and the flag
        packed into one record per id, one ``Alltoallv`` of raw bytes (no pickling of
        ~2 MB of q_lm)."""
        arrays = [np.asarray(a) for a in arrays]
        record = np.dtype([(f"a{k}", a.dtype, a.shape[1:]) for k, a in enumerate(arrays)]
                          + [("have", np.bool_)], align=True)
        send = np.empty(len(self.rows), record)
        order = np.arange(len(self.rows), dtype=np.int64)
        for k, a in enumerate(arrays):
            field = _as_rows(send[f"a{k}"])  # a view: a field's values lie together
            if len(a):  # compiled: np.take into a strided field went through a buffer
                _copy_rows(_as_rows(a), self.rows, field, order)
            else:
                field[...] = 0
        send["have"] = self.have
        received = _alltoallv(comm, send, self.n_wanted, self.n_asked)
        return received["have"], [received[f"a{k}"] for k in range(len(arrays))]


def _as_rows(a: np.ndarray) -> np.ndarray:
    """A view of ``a`` as (rows, values per row), also when it has no rows."""
    return a.reshape(len(a), int(np.prod(a.shape[1:], dtype=np.int64)))


@njit(cache=True)
def _copy_rows(received, source, destination, rows):  # pragma: no cover - compiled
    """destination[rows[i]] = received[source[i]] where source[i] >= 0."""
    for i in range(source.shape[0]):
        r = source[i]
        if r >= 0:
            d = rows[i]
            for c in range(received.shape[1]):
                destination[d, c] = received[r, c]


@njit(cache=True)
def _possible_owners(u, lo, hi, periodic, rank):  # pragma: no cover - compiled
    """(M, ranks) whether each point (fractional, wrapped into the cell) lies inside each
    rank's widened subdomain [lo, hi), per axis also through a periodic boundary (a
    subdomain at the other edge of the cell); this rank's column stays False."""
    n_ranks = lo.shape[0]
    out = np.zeros((u.shape[0], n_ranks), np.bool_)
    for i in range(u.shape[0]):
        for q in range(n_ranks):
            if q == rank:
                continue
            inside = True
            for d in range(3):
                x = u[i, d]
                hit = lo[q, d] <= x < hi[q, d]
                if periodic[d] and not hit:
                    hit = lo[q, d] <= x - 1.0 < hi[q, d] or lo[q, d] <= x + 1.0 < hi[q, d]
                if not hit:
                    inside = False
                    break
            out[i, q] = inside
    return out


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
