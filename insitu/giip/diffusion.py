"""Diffusion maps on a GIIP distance matrix, the redundancy test of their coordinates, and
the Nystrom extension to new LAEs (Hardin et al., Eqs. 14-19).

Kernel W_ij = exp(-d_ij^2 / (2 eps^2)) with eps in "atoms of difference" (Eq. 14; the
paper uses 1.0 for the 2D crystal, 1.5 for the glass); density normalisation
W~ = P^-1 W P^-1 with P_ii = sum_j W_ij (Eqs. 15-16); Markov matrix M = D^-1 W~ with
D_ii = sum_j W~_ij (Eq. 17); M phi = lambda phi (Eq. 18) solved through the symmetric
conjugate D^-1/2 W~ D^-1/2; Nystrom (Eq. 19): phi_k(x) = (1/lambda_k) sum_j M(x, x_j)
phi_k(x_j), with M(x, .) built from the new point's distances by the same normalisations.
The trivial constant eigenvector (lambda = 1) is dropped: coordinate 1 is the first
non-trivial one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DiffusionMap", "diffusion_map", "linear_r2", "nystrom", "redundancy"]


@dataclass
class DiffusionMap:
    """eps: kernel scale; density: P_ii of the training points (Eq. 16); eigenvalues
    (k,) and eigenvectors (n_train, k) of M (Eq. 18), trivial one removed, sorted by
    decreasing eigenvalue."""

    eps: float
    density: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    @property
    def coordinates(self) -> np.ndarray:
        """Diffusion coordinates of the training points, (n_train, k)."""
        return self.eigenvectors


def _kernel(d: np.ndarray, eps: float) -> np.ndarray:
    """Eq. 14 with the GIIP distance as the norm."""
    return np.exp(-np.asarray(d, float) ** 2 / (2.0 * eps ** 2))


def diffusion_map(distances: np.ndarray, eps: float, n_coords: int = 10) -> DiffusionMap:
    """Diffusion map of a symmetric distance matrix (Eqs. 14-18)."""
    d = np.asarray(distances, float)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"diffusion_map: need a square distance matrix, got {d.shape}")
    d = 0.5 * (d + d.T)
    w = _kernel(d, eps)
    p = w.sum(axis=1)                                   # Eq. 16
    wt = w / np.outer(p, p)                             # Eq. 15
    deg = wt.sum(axis=1)                                # Eq. 17 denominators
    s = wt / np.sqrt(np.outer(deg, deg))                # symmetric conjugate of M
    k = min(int(n_coords) + 1, len(d))
    vals, vecs = np.linalg.eigh(s)
    order = np.argsort(vals)[::-1][:k]
    vals, vecs = vals[order], vecs[:, order]
    phi = vecs / np.sqrt(deg)[:, None]                  # right eigenvectors of M
    phi = phi / np.sqrt((phi ** 2 * deg[:, None]).sum(0) / deg.sum())  # unit weighted norm
    signs = np.sign(phi[np.argmax(np.abs(phi), axis=0), np.arange(phi.shape[1])])
    phi = phi * signs
    return DiffusionMap(float(eps), p, vals[1:], np.ascontiguousarray(phi[:, 1:]))


def nystrom(dmap: DiffusionMap, distances_to_train: np.ndarray) -> np.ndarray:
    """Diffusion coordinates (n_new, k) of new points from their GIIP distances to the
    training points (n_new, n_train), by the Nystrom extension (Eq. 19). A new point at
    distance 0 from training point j with the same distances to the others as j gets
    exactly j's coordinates."""
    d = np.atleast_2d(np.asarray(distances_to_train, float))
    if d.shape[1] != len(dmap.density):
        raise ValueError(f"nystrom: {d.shape[1]} distances per point for "
                         f"{len(dmap.density)} training points")
    w = _kernel(d, dmap.eps)
    p_new = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        wt = w / (p_new[:, None] * dmap.density[None, :])
        m = wt / wt.sum(axis=1, keepdims=True)
    out = (m @ dmap.eigenvectors) / dmap.eigenvalues[None, :]
    out[~np.isfinite(out).all(axis=1)] = np.nan       # no training point within reach
    return out


def redundancy(coords: np.ndarray, n_test: int | None = None,
               scale: float = 1.0 / 3.0) -> np.ndarray:
    """r^2 of predicting each diffusion coordinate from the preceding ones by leave-one-out
    local linear regression (Dsilva et al. 2018, the paper's Figs. 1b, 2b): near 1 the
    coordinate is a harmonic of earlier ones (redundant), near 0 it is new. The kernel
    width is ``scale`` times the median pairwise distance in the preceding coordinates.
    The first coordinate gets 0 (nothing precedes it). Reported is 1 - (leave-one-out
    squared error) / (variance), floored at 0 (isolated points, e.g. rare defects far out
    in coordinate space, can make the local fit worse than the mean)."""
    x = np.asarray(coords, float)
    n, k = x.shape
    r2 = np.zeros(k)
    for c in range(1, k if n_test is None else min(k, n_test)):
        prev = x[:, :c]
        d2 = ((prev[:, None, :] - prev[None, :, :]) ** 2).sum(-1)
        h = scale * np.median(np.sqrt(d2[np.triu_indices(n, 1)]))
        kern = np.exp(-d2 / max(h * h, 1e-300))
        np.fill_diagonal(kern, 0.0)
        pred = np.empty(n)
        design = np.column_stack([np.ones(n), prev])
        for i in range(n):
            wi = kern[i]
            a = design * wi[:, None]
            gram = a.T @ design
            coef, *_ = np.linalg.lstsq(gram + 1e-8 * np.trace(gram) * np.eye(c + 1),
                                       a.T @ x[:, c], rcond=None)
            pred[i] = np.concatenate([[1.0], prev[i]]) @ coef
        resid = np.sum((x[:, c] - pred) ** 2)
        r2[c] = max(0.0, 1.0 - resid / max(np.sum((x[:, c] - x[:, c].mean()) ** 2), 1e-300))
    return r2


def linear_r2(x: np.ndarray, y: np.ndarray) -> float:
    """r^2 of the least-squares fit y ~ a + b x (x one or several columns): how much of a
    per-atom quantity (coordination, composition, strain) a diffusion coordinate explains."""
    a = np.column_stack([np.ones(len(y)), x])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    return float(1.0 - res @ res / ((y - y.mean()) @ (y - y.mean())))
