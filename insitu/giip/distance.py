"""GIIP inner product, distance and distance matrices (Hardin et al., Eqs. 9-13).

:func:`giip_inner` is Eq. 13 for two LAEs as they are (no rotation);
:func:`distance_matrix` gives the orientation-minimised distances (Eq. 10) between two
sets, or the symmetric matrix of one set, computed in row chunks, in parallel over worker
processes (``processes``) or over MPI ranks (``comm``: each rank computes every size-th
chunk, one Allreduce). Distances are in "atoms of difference": removing one atom of weight
1 gives 1, swapping a +1 atom for a -1 atom (sign species) gives 2.
"""

from __future__ import annotations

import multiprocessing
import time

import numpy as np

from .kernel import best_overlap, cross_block, self_overlaps
from .lae import GIIPSettings, LAESet
from .rotations import rotation_grid

__all__ = ["giip_inner", "giip_distance", "distance_matrix", "self_inner", "search_grid"]


def search_grid(settings: GIIPSettings) -> np.ndarray:
    """The coarse orientation grid of Eq. 10's search for these settings."""
    return rotation_grid(settings.dim, settings.coarse_deg)


def giip_inner(pos_a: np.ndarray, w_a: np.ndarray, pos_b: np.ndarray, w_b: np.ndarray,
               sigma: float, ch_a: np.ndarray | None = None,
               ch_b: np.ndarray | None = None) -> float:
    """<X_a, X_b> of Eq. 13 (unit-norm Gaussians of width ``sigma``, no rotation): the sum
    over atom pairs of the same channel of w_a w_b exp(-|a - b|^2 / (4 sigma^2))."""
    pos_a, pos_b = np.atleast_2d(pos_a), np.atleast_2d(pos_b)
    ch_a = np.zeros(len(pos_a), np.int64) if ch_a is None else np.asarray(ch_a)
    ch_b = np.zeros(len(pos_b), np.int64) if ch_b is None else np.asarray(ch_b)
    d2 = ((pos_a[:, None, :] - pos_b[None, :, :]) ** 2).sum(-1)
    same = ch_a[:, None] == ch_b[None, :]
    return float((np.outer(w_a, w_b) * np.exp(-d2 / (4 * sigma ** 2)) * same).sum())


def self_inner(laes: LAESet, settings: GIIPSettings) -> np.ndarray:
    """<X, X> of every LAE of a set (Eq. 13)."""
    return self_overlaps(laes.positions, laes.weights, laes.channels, laes.counts,
                         settings.inv4s2)


def giip_distance(a: LAESet, i: int, b: LAESet, j: int, settings: GIIPSettings,
                  rotate: bool = True) -> float:
    """GIIP distance between LAE i of ``a`` and LAE j of ``b``: Eq. 9, minimised over
    orientations (Eq. 10) unless ``rotate`` is False."""
    sa = self_inner(a.subset([i]), settings)[0]
    sb = self_inner(b.subset([j]), settings)[0]
    na, nb = int(a.counts[i]), int(b.counts[j])
    if rotate:
        s = best_overlap(a.positions[i], a.weights[i], a.channels[i], na, b.positions[j],
                         b.weights[j], b.channels[j], nb, search_grid(settings),
                         settings.improper, settings.n_starts, settings.inv4s2,
                         settings.max_iter)
    else:
        s = giip_inner(a.positions[i, :na], a.weights[i, :na], b.positions[j, :nb],
                       b.weights[j, :nb], settings.sigma, a.channels[i, :na],
                       b.channels[j, :nb])
    return float(np.sqrt(max(sa + sb - 2.0 * s, 0.0)))


_WORK: dict = {}


def _block(rows: tuple[int, int]) -> tuple[int, np.ndarray]:
    w = _WORK
    r0, r1 = rows
    a, b, sa, sb, st = w["a"], w["b"], w["sa"], w["sb"], w["settings"]
    out = np.zeros((r1 - r0, len(b)))
    cross_block(a.positions[r0:r1], a.weights[r0:r1], a.channels[r0:r1], a.counts[r0:r1],
                sa[r0:r1], b.positions, b.weights, b.channels, b.counts, sb, w["grid"],
                st.improper, st.n_starts, st.inv4s2, st.max_iter,
                r0 if w["symmetric"] else -1, out)
    return r0, out


def distance_matrix(a: LAESet, b: LAESet | None = None,
                    settings: GIIPSettings | None = None, processes: int = 1,
                    chunk: int = 32, comm=None, progress: bool = False) -> np.ndarray:
    """Orientation-minimised GIIP distances (Eqs. 9, 10, 13): (len(a), len(b)), or the
    symmetric (len(a), len(a)) matrix with zero diagonal when ``b`` is None.

    Rows go in chunks of ``chunk`` LAEs to ``processes`` forked workers, or, with an
    mpi4py communicator ``comm``, chunk k to rank k % size (every rank returns the whole
    matrix)."""
    settings = settings or GIIPSettings()
    symmetric = b is None
    b = a if symmetric else b
    _WORK.update(a=a, b=b, sa=self_inner(a, settings),
                 sb=self_inner(b, settings), settings=settings,
                 grid=search_grid(settings), symmetric=symmetric)
    starts = list(range(0, len(a), max(1, int(chunk))))
    blocks = [(r, min(r + chunk, len(a))) for r in starts]
    if symmetric:  # later rows have fewer entries: interleave for balance
        blocks = blocks[::2] + blocks[1::2][::-1]
    out = np.zeros((len(a), len(b)))
    t0 = time.perf_counter()
    if comm is not None:
        mine = blocks[comm.Get_rank()::comm.Get_size()]
        for r0, block in map(_block, mine):
            out[r0:r0 + len(block)] = block
        total = np.zeros_like(out)
        comm.Allreduce(out, total)
        out = total
    elif processes > 1 and len(blocks) > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(processes) as pool:
            for k, (r0, block) in enumerate(pool.imap_unordered(_block, blocks)):
                out[r0:r0 + len(block)] = block
                if progress and (k + 1) % max(1, len(blocks) // 10) == 0:
                    print(f"  distance rows: {k + 1}/{len(blocks)} chunks, "
                          f"{time.perf_counter() - t0:.0f} s", flush=True)
    else:
        for r0, block in map(_block, blocks):
            out[r0:r0 + len(block)] = block
    _WORK.clear()
    if symmetric:
        out = out + out.T
    return out
