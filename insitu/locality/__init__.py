"""Neighbour search: a numba cell list over open point sets and periodic frames.

Stage 1 of the data flow (positions -> neighbours); knows nothing about descriptors or LAMMPS.
"""

from .cell_list import CellList, periodic_images
from .neighbor_list import NeighborList, csr_entries
from .ordering import TIE_RTOL, fix_ties
from .points import IdIndex, NeighborQuery, Points, as_points, find_ids, present_types, unique_ids
from .shared import SharedNeighbors, shared_query

__all__ = ["CellList", "NeighborList", "NeighborQuery", "Points", "as_points", "TIE_RTOL",
           "fix_ties", "periodic_images", "csr_entries", "SharedNeighbors", "shared_query",
           "find_ids", "IdIndex", "unique_ids", "present_types"]
