"""MPI helpers of the in-situ analysis: errors every rank agrees on, and the reductions of
per-rank partial results (stage 4 of the data flow: probabilities -> reductions)."""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["InsituError", "collective_check", "sum_over_ranks", "max_over_ranks"]


class InsituError(RuntimeError):
    """An error every rank agrees on; raised on all ranks at once so LAMMPS stops cleanly.
    ``reported`` is True once rank 0 has printed it."""

    reported = False


def collective_check(comm, message: str | None) -> None:
    """Raise the same InsituError on every rank if any rank reported a problem; rank 0
    prints the first message once."""
    messages = comm.allgather(message)
    bad = [(r, m) for r, m in enumerate(messages) if m]
    if bad:
        rank, msg = bad[0]
        if comm.Get_rank() == 0:
            print(f"\nERROR insitu (rank {rank}): {msg}\n", file=sys.stderr, flush=True)
        error = InsituError(msg)
        error.reported = True
        raise error


def sum_over_ranks(comm, values: np.ndarray) -> np.ndarray:
    """Element-wise sum over the ranks of ``comm`` (float64)."""
    from mpi4py import MPI

    local = np.ascontiguousarray(values, dtype=np.float64)
    total = np.empty_like(local)
    comm.Allreduce(local, total, op=MPI.SUM)
    return total


def max_over_ranks(comm, values: np.ndarray) -> np.ndarray:
    """Element-wise maximum over the ranks of ``comm`` (float64)."""
    from mpi4py import MPI

    local = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty_like(local)
    comm.Allreduce(local, out, op=MPI.MAX)
    return out
