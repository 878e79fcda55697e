"""Does LAMMPS's ghost shell hold every atom the descriptor needs? (first-call check)

Rule (LAMMPS-NOTES): ghosts are exact images within the ghost cutoff; neighbours are complete
within that minus the neighbor skin, so ``comm_modify cutoff >= descriptor cutoff + skin``.
"""

from __future__ import annotations

import math

import numpy as np

from .compat import flush_log, ghost_cutoff_from_log
from .mpi import max_over_ranks

__all__ = ["ghost_problem", "ghost_reach_upper_bound"]


def ghost_problem(lmp, comm, nlocal: int, x: np.ndarray, required: float, skin: float,
                  model_path: str) -> str | None:
    """Compare LAMMPS's ghost cutoff with what the descriptor needs: its cutoff plus the
    neighbor skin (atoms move up to skin/2 between reneighbourings, so the ghost shell must
    be that much thicker). Collective. Returns an error message or None."""
    if comm.Get_rank() == 0:
        flush_log(lmp)
    ghost_cutoff = comm.bcast(ghost_cutoff_from_log() if comm.Get_rank() == 0 else None)
    source = "LAMMPS's ghost atom cutoff"
    if ghost_cutoff is None:
        ghost_cutoff = ghost_reach_upper_bound(lmp, comm, nlocal, x)
        source = "the measured reach of the ghost atoms"
    if ghost_cutoff is None:
        return None
    need = required + skin
    if ghost_cutoff + 1e-6 >= need:
        return None
    fix = math.ceil(need * 10) / 10
    return (f"{source} is {ghost_cutoff:.2f}, but the descriptor of '{model_path}' "
            f"needs every atom within {required:.2f} (its cutoff) + {skin:.2f} "
            f"(neighbor skin) of each local atom. Add 'comm_modify cutoff {fix:g}' to the "
            f"input script before the run (if your neighbor skin is not {skin:g}, "
            "pass skin=<your skin> to insitu_attach)")


def ghost_reach_upper_bound(lmp, comm, nlocal: int, x: np.ndarray) -> float | None:
    """Upper bound of the ghost cutoff from the ghost atoms themselves (orthogonal boxes;
    collective). Beyond each subdomain face: the outermost ghost plus the widest gap
    between ghost coordinates (atoms sit on discrete planes, the shell may end in a gap).
    One cutoff holds for all faces of all ranks, but a face that looks onto a surface or
    vacuum ends early, so the bound is the largest value over all faces."""
    bound = -math.inf
    if not lmp.extract_setting("triclinic"):
        sublo = np.array(lmp.extract_global("sublo")[:3])
        subhi = np.array(lmp.extract_global("subhi")[:3])
        ghosts = x[nlocal:]
        for d in range(3):
            for side, face in (("lo", sublo[d]), ("hi", subhi[d])):
                beyond = (face - ghosts[:, d]) if side == "lo" else (ghosts[:, d] - face)
                beyond = np.sort(beyond[beyond > 0])
                if len(beyond):
                    gap = float(np.max(np.diff(beyond, prepend=0.0)))
                    bound = max(bound, float(beyond[-1]) + gap)
    bound = float(max_over_ranks(comm, np.array([bound]))[0])
    return None if math.isinf(bound) else bound
