"""Does LAMMPS's ghost shell hold every atom the descriptor needs? (first-call check)

Rule (LAMMPS-NOTES): ghosts are exact images of atoms that were within the ghost cutoff of
the subdomain at the last reneighbouring, and atoms move at most skin/2 in between, so every
atom within the descriptor cutoff r of a local atom is present when
``ghost cutoff >= r + skin``. This holds for orthogonal and triclinic boxes (LAMMPS sizes a
triclinic ghost shell by perpendicular distance) and for periodic and open boundaries alike.

The exact ghost cutoff is the ``ghost atom cutoff = X`` line LAMMPS prints when it sets up a
run. The 2021 library cannot flush its log, so the C stdio buffers of the process are
flushed directly, and the line is read from whichever file LAMMPS writes (``-log``, a
``log`` command, or a redirected screen). Only when no such file exists (``-log none`` and
screen to a terminal) does the check fall back on the ghosts themselves, conservatively.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from .compat import flush_log
from .mpi import max_over_ranks

__all__ = ["ghost_problem", "ghost_requirement", "read_lammps_output", "GhostSettings",
           "Subdomain"]

_GHOST = re.compile(r"ghost atom cutoff = ([0-9.eE+-]+)")
_SKIN = re.compile(r"^\s*neighbor\s+([0-9.eE+-]+)\s+\w+", re.M)
_TAIL_BYTES = 8 << 20


class GhostSettings:
    """What LAMMPS's own output says about this run: ghost cutoff and neighbor skin."""

    def __init__(self, ghost_cutoff: float | None, skin: float | None, source: str | None):
        self.ghost_cutoff = ghost_cutoff
        self.skin = skin
        self.source = source


def _flush_c_streams() -> None:
    try:
        ctypes.CDLL(None).fflush(None)  # all FILE* of the process, LAMMPS's log included
    except (OSError, AttributeError):  # pragma: no cover - not a glibc-like platform
        pass


def read_lammps_output() -> GhostSettings:
    """The last ghost cutoff (and neighbor skin, when the input was echoed) printed in any
    regular file this process has open for LAMMPS output; the most recently written wins."""
    _flush_c_streams()
    found = []
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        fds = []
    seen = set()
    for fd in fds:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
            if path in seen or not os.path.isfile(path):
                continue
            seen.add(path)
            with open(path, "rb") as fh:
                fh.seek(max(0, os.path.getsize(path) - _TAIL_BYTES))
                text = fh.read().decode(errors="replace")
        except OSError:
            continue
        ghost = _GHOST.findall(text)
        if ghost:
            skin = _SKIN.findall(text)
            found.append((os.path.getmtime(path), float(ghost[-1]),
                          float(skin[-1]) if skin else None, path))
    if not found:
        return GhostSettings(None, None, None)
    _, ghost, skin, path = max(found)
    return GhostSettings(ghost, skin, path)


def ghost_requirement(classifier, exchange: bool) -> tuple[float, str]:
    """The radius of atoms a rank needs around each local atom for ``classifier`` and what
    makes it up (for the message). With a halo exchange (``exchange``) what the ghosts'
    owners computed is received (q_lm for q-bar, probabilities for a neighbour consensus):
    the larger of the descriptor's search radius and the consensus radius; without one the
    rank computes it for its ghosts itself: the descriptor's full cutoff plus the consensus
    radius."""
    descriptor = classifier.descriptor
    cutoff = float(descriptor.exchange_cutoff if exchange else descriptor.required_cutoff)
    rule = getattr(classifier, "consensus", None)
    if rule is None or (exchange and cutoff >= rule.cutoff_angstrom):
        return cutoff, "its cutoff"
    radius = f"its neighbour-consensus radius {rule.cutoff_angstrom:.2f}"
    if exchange:
        return float(rule.cutoff_angstrom), radius
    return cutoff + rule.cutoff_angstrom, f"its descriptor cutoff {cutoff:.2f} + {radius}"


def ghost_problem(lmp, comm, nlocal: int, x: np.ndarray, required: float,
                  skin: float | None, default_skin: float, model_path: str,
                  options_where: str = "to insitu_attach",
                  required_why: str = "its cutoff") -> str | None:
    """Collective. None when every atom within ``required`` of each local atom is present,
    else an error message naming the ``comm_modify cutoff`` to add. ``skin`` is the user's
    ``skin=`` option (None: LAMMPS's echoed ``neighbor`` command, else ``default_skin``);
    ``options_where`` says where that option goes (python/invoke or driver mode);
    ``required_why`` what makes up ``required``."""
    if comm.Get_rank() == 0:
        flush_log(lmp)
        settings = read_lammps_output()
    else:
        settings = None
    settings = comm.bcast(settings)
    skin_used = skin if skin is not None else (
        settings.skin if settings.skin is not None else default_skin)
    need = required + skin_used
    fix = math.ceil(need * 10) / 10
    what = (f"the descriptor of '{model_path}' needs every atom within {required:.2f} A "
            f"({required_why}) + {skin_used:.2f} (neighbor skin) of each local atom")
    if settings.ghost_cutoff is not None:
        if settings.ghost_cutoff + 1e-9 >= need:
            return None
        return (f"LAMMPS's ghost atom cutoff is {settings.ghost_cutoff:g} but {what}. Add "
                f"'comm_modify cutoff {fix:g}' to the input script before the run (if your "
                f"neighbor skin is not {skin_used:g}, pass skin=<your skin> {options_where})")
    reach = ghost_reach(lmp, comm, nlocal, x)
    # ghosts drift up to skin/2 beyond the shell they were chosen in: discount it
    if reach is not None and reach - 0.5 * skin_used >= need:
        return None
    safe = math.ceil((need + 0.5 * skin_used) * 10) / 10
    return (f"insitu cannot read LAMMPS's ghost cutoff (no log file: run with a log, i.e. "
            f"without '-log none') and the ghost atoms reach only "
            f"{'-' if reach is None else f'{reach:.2f}'} A, but {what}. Add 'comm_modify "
            f"cutoff {safe:g}' (or write a log so the exact value, {fix:g}, can be checked)")


@dataclass
class Subdomain:
    """This rank's subdomain in the cell's fractional (LAMMPS lamda) coordinates:
    ``fractions(x)`` maps positions, [``lo``, ``hi``) bounds the subdomain, ``spacing``
    (A) turns a fractional distance along each axis into a perpendicular one, ``periodic``
    per axis."""

    boxlo: np.ndarray
    inverse_cell: np.ndarray
    spacing: np.ndarray
    periodic: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def of(cls, lmp) -> Subdomain:
        boxlo, boxhi, xy, yz, xz, periodic, _ = lmp.extract_box()
        lengths = np.subtract(boxhi, boxlo, dtype=float)
        h = np.diag(lengths)
        h[1, 0], h[2, 0], h[2, 1] = xy, xz, yz
        boxlo = np.asarray(boxlo, float)
        if xy == xz == yz == 0:  # orthogonal (read at every analysis call: no linalg)
            inverse, spacing = np.diag(1.0 / lengths), lengths
        else:
            inverse = np.linalg.inv(h)
            spacing = abs(np.linalg.det(h)) / np.linalg.norm(
                np.cross(h[[1, 2, 0]], h[[2, 0, 1]]), axis=1)
        if lmp.extract_setting("triclinic"):
            lo = np.array(lmp.extract_global("sublo_lambda")[:3], float)
            hi = np.array(lmp.extract_global("subhi_lambda")[:3], float)
        else:
            lo = (np.array(lmp.extract_global("sublo")[:3], float) - boxlo) / lengths
            hi = (np.array(lmp.extract_global("subhi")[:3], float) - boxlo) / lengths
        return cls(boxlo, inverse, spacing, np.array(periodic, bool), lo, hi)

    def fractions(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, float).reshape(-1, 3) - self.boxlo) @ self.inverse_cell


def ghost_reach(lmp, comm, nlocal: int, x: np.ndarray) -> float | None:
    """How far beyond its subdomain the furthest ghost atom of any rank lies (collective;
    perpendicular distance, from the fractional coordinates, so triclinic boxes too)."""
    ghosts = x[nlocal:]
    reach = -math.inf
    if len(ghosts):
        box = Subdomain.of(lmp)
        u = box.fractions(ghosts)
        # fractional distance times the plane spacing = perpendicular distance
        reach = float((np.maximum(box.lo - u, u - box.hi) * box.spacing).max())
    reach = float(max_over_ranks(comm, np.array([reach]))[0])
    return None if math.isinf(reach) else reach
