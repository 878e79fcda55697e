"""Per-atom descriptors (stage 2 of the data flow: neighbours -> features).

* :class:`NeighborsMap` -- the Neighbors Map image (Allera et al., Sec. 2.2);
* :class:`Steinhardt` -- bond-orientational order q_l, w_l, LESS cross-species features.

Each is registered by its ``kind`` (the string stored in model metadata), so
:func:`descriptor_from_metadata` builds it from a model file. Adding a descriptor: a new
module with a :class:`Descriptor` subclass decorated by :func:`register_descriptor`, and
one import line below.
"""

from .base import (
    DESCRIPTOR_KINDS,
    Descriptor,
    described_mask,
    descriptor_from_metadata,
    register_descriptor,
)
from .neighbors_map import NeighborsMap
from .spherical import wigner3j
from .steinhardt import Steinhardt

__all__ = ["Descriptor", "NeighborsMap", "Steinhardt", "descriptor_from_metadata",
           "described_mask", "register_descriptor", "DESCRIPTOR_KINDS", "wigner3j"]
