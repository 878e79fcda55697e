"""Orientation grids for the GIIP orientation search (Hardin et al., Eq. 10).

The minimum of Eq. 10 is searched in two stages: a coarse, nearly uniform grid of proper
rotations (evaluated for the LAE and for its mirror image, so the search covers O(d), or
SO(d) when chirality matters), then a local refinement from the best grid points
(:mod:`insitu.giip.kernel`). In 2D the grid is angles at a fixed step; in 3D it is the
Super-Fibonacci spiral of unit quaternions (Alexa, CVPR 2022), whose size follows the
requested spacing from the volume of SO(3): the fraction of rotations within angle t of a
given one is (t - sin t) / pi.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rotation_grid", "so3_grid_size", "quaternion_to_matrix", "random_rotation"]

_PHI = np.sqrt(2.0)
_PSI = 1.533751168755204288118041


def so3_grid_size(spacing_deg: float) -> int:
    """Number of Super-Fibonacci rotations for a spacing of ``spacing_deg``: the inverse of
    the SO(3) volume fraction (t - sin t) / pi of a ball of angular radius t = spacing
    (5 deg: ~28,000 rotations; 20 deg: ~450; 30 deg: ~130); a random rotation is then
    typically within 0.85 spacing of a grid rotation, at worst ~1.35 spacing."""
    t = np.radians(float(spacing_deg))
    if not 0.0 < t <= np.pi:
        raise ValueError(f"rotation spacing must be in (0, 180] degrees, got {spacing_deg}")
    return max(1, int(np.ceil(np.pi / (t - np.sin(t)))))


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, float)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def rotation_grid(dim: int, spacing_deg: float) -> np.ndarray:
    """(n, dim, dim) proper rotations covering SO(dim) at about ``spacing_deg``.

    dim 2: angles 0, step, 2 step, ... < 360. dim 3: Super-Fibonacci quaternions, the
    identity included as the first element (so aligned LAEs start at their optimum)."""
    if dim == 2:
        step = np.radians(float(spacing_deg))
        if not 0.0 < step <= 2 * np.pi:
            raise ValueError(f"rotation spacing must be in (0, 360] degrees, got {spacing_deg}")
        ang = np.arange(0.0, 2 * np.pi - 1e-12, step)
        c, s = np.cos(ang), np.sin(ang)
        return np.ascontiguousarray(np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2))
    if dim != 3:
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    n = so3_grid_size(spacing_deg)
    i = np.arange(n) + 0.5
    r = np.sqrt(i / n)
    big_r = np.sqrt(1.0 - i / n)
    alpha = 2.0 * np.pi * i / _PHI
    beta = 2.0 * np.pi * i / _PSI
    q = np.column_stack([r * np.sin(alpha), r * np.cos(alpha),
                         big_r * np.sin(beta), big_r * np.cos(beta)])
    q = np.vstack([[1.0, 0.0, 0.0, 0.0], q])
    return np.ascontiguousarray(quaternion_to_matrix(q))


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (dim, dim)."""
    if dim == 2:
        a = rng.uniform(0, 2 * np.pi)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    q = rng.normal(size=4)
    return quaternion_to_matrix(q / np.linalg.norm(q))
