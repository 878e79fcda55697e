"""Neighbors Maps at a smaller n_G from a dataset stored at a larger one, by cropping.

Row l of a Neighbors Map (Allera et al., Sec. 2.2, Eq. 1) belongs to node l of G_j, the
centre's l-th nearest neighbour, and column k to that node's k-th nearest node: neither
depends on n_G. So the map at n_G' < n_G is the top-left n_G' x n_G' block of the map at
n_G, exactly, when every other parameter is the same (cutoff, gamma, beta, channel weights)
and the same atoms are undescribed (NaN). The latter holds when the smaller descriptor's
``min_neighbors`` is the stored one's :attr:`~insitu.descriptors.NeighborsMap.neighbors_needed`
(16 for a stored n_G 32 with the default rule): :func:`cropped_descriptor` sets it so.

:func:`features_for` gives the features a model needs from a dataset's features: as stored
when the descriptors are equal, cropped when the crop is exact, refused
(:class:`~insitu.descriptors.fingerprint.DescriptorMismatch`) otherwise.
"""

from __future__ import annotations

import numpy as np

from insitu.descriptors import NeighborsMap, descriptor_from_metadata
from insitu.descriptors.fingerprint import DescriptorMismatch

__all__ = ["cropped_descriptor", "crop_maps", "features_for", "crop_note"]


def cropped_descriptor(stored, n_grid: int) -> NeighborsMap:
    """The Neighbors Map descriptor at ``n_grid`` whose maps are the top-left crop of those
    of ``stored`` (a :class:`NeighborsMap` or its metadata): same cutoff, gamma, beta and
    channel weights, ``min_neighbors`` = the stored descriptor's neighbours needed (so the
    same atoms are undescribed). Raises ValueError when ``stored`` is no Neighbors Map or
    ``n_grid`` exceeds its n_G."""
    if isinstance(stored, dict):
        stored = descriptor_from_metadata(stored)
    if not isinstance(stored, NeighborsMap):
        raise ValueError(f"only Neighbors Maps can be cropped, not {stored.kind!r}")
    if not 1 <= int(n_grid) <= stored.n_grid:
        raise ValueError(f"n_grid {n_grid}: a map stored at n_G {stored.n_grid} crops to "
                         f"1..{stored.n_grid}")
    return NeighborsMap(stored.cutoff, int(n_grid), stored.gamma, stored.beta,
                        stored.channel_weights, min_neighbors=stored.neighbors_needed)


def crop_maps(features: np.ndarray, n_grid: int) -> np.ndarray:
    """The top-left ``n_grid`` x ``n_grid`` block of (N, C, n_G, n_G) maps (a contiguous
    copy; the maps themselves when already that size)."""
    if features.shape[-1] == n_grid:
        return features
    return np.ascontiguousarray(features[..., :n_grid, :n_grid])


def features_for(features: np.ndarray, stored, wanted, what: str = "dataset") -> np.ndarray:
    """``features`` computed by descriptor ``stored`` as descriptor ``wanted`` computes them:
    unchanged when both have the same parameters, the top-left crop when ``wanted`` is
    :func:`cropped_descriptor` of ``stored`` at its n_G. Anything else raises
    :class:`DescriptorMismatch` (the features would not be those ``wanted`` computes)."""
    if isinstance(stored, dict):
        stored = descriptor_from_metadata(stored)
    if isinstance(wanted, dict):
        wanted = descriptor_from_metadata(wanted)
    if stored.to_metadata() == wanted.to_metadata():
        return features
    if isinstance(stored, NeighborsMap) and isinstance(wanted, NeighborsMap) \
            and wanted.n_grid < stored.n_grid:
        exact = cropped_descriptor(stored, wanted.n_grid)
        if _same_maps(exact, wanted):
            return crop_maps(features, wanted.n_grid)
        raise DescriptorMismatch(
            f"{what}: maps stored at {stored.to_metadata()} crop exactly only to "
            f"{exact.to_metadata()} (same cutoff, gamma, beta, channel weights and "
            f"undescribed atoms), not to {wanted.to_metadata()}")
    raise DescriptorMismatch(f"{what} was computed with descriptor parameters "
                             f"{stored.to_metadata()}, not {wanted.to_metadata()}")


def _same_maps(a: NeighborsMap, b: NeighborsMap) -> bool:
    """Equal parameters, ``min_neighbors`` compared through the rule it gives."""
    ma, mb = a.to_metadata(), b.to_metadata()
    ma["min_neighbors"] = a.neighbors_needed
    mb["min_neighbors"] = b.neighbors_needed
    return ma == mb


def crop_note(training: dict) -> str:
    """For a model card: the maps' crop (empty unless the model's ``training`` metadata says
    its maps were cropped from a larger n_G)."""
    stored = training.get("cropped_from")
    if not stored:
        return ""
    params = (training.get("descriptor_fingerprint") or {}).get("params") or {}
    return (f" (layer sizes above at n_G 32; here n_G {params.get('n_grid')}: the dataset's "
            f"n_G {stored.get('n_grid')} maps cropped to their top-left {params.get('n_grid')}"
            f" x {params.get('n_grid')} block, exactly the maps of the descriptor above)")
