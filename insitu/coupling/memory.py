"""Keep freed memory in the process for the next analysis call (glibc's ``mallopt``).

Every call allocates and frees the same arrays (neighbour lists, features, halo buffers:
~12 MB per 16,000 atoms). glibc hands blocks above its mmap threshold (128 KiB at start,
adapting up to 32 MiB) straight back to the kernel when freed, and trims the top of the
heap, so the next call's arrays are fresh pages that fault in one by one: ~3,000 page
faults per 16,000 atoms, ~12 ms of a ~75 ms crystal-boo call on a virtual machine. With
a fixed mmap threshold of 32 MiB and a trim threshold of 1 GiB, freed blocks stay in the
heap and the next call reuses them without faults. The setting is process-wide (LAMMPS's
own allocations below 32 MiB come from the heap too, and the process keeps up to 1 GiB of
freed memory instead of returning it); ``keep_memory=no`` leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES"]

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's upper limit for the mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (see the module docstring); True if set, False
    where the C library has no ``mallopt`` (not glibc) or refuses the values."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # the trim threshold first: setting it fixes the mmap threshold's adaptation too
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
