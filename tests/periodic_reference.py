"""Periodic images by brute force, for the tests' plain NumPy references of the
descriptors (no code shared with :mod:`insitu.locality`)."""

from __future__ import annotations

import itertools

import numpy as np

from insitu.frame import Frame


def all_images(frame: Frame, reach_angstrom: float) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray]:
    """(wrapped positions (N, 3), every periodic image within ``reach_angstrom`` of the
    box (M, 3), the atom index of each image (M,)): enough cell shifts along each lattice
    vector that no image within ``reach_angstrom`` of an atom is missing."""
    cell = frame.cell
    frac = frame.positions @ np.linalg.inv(cell)
    frac -= np.floor(frac)
    pos = frac @ cell
    vol = abs(np.linalg.det(cell))
    reach = [int(np.ceil(reach_angstrom / (vol / np.linalg.norm(
        np.cross(cell[(d + 1) % 3], cell[(d + 2) % 3]))))) + 1 for d in range(3)]
    shifts = np.array(list(itertools.product(*[range(-k, k + 1) for k in reach])), float)
    images = (pos[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
    return pos, images, np.tile(np.arange(len(pos)), len(shifts))
