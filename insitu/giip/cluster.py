"""Agglomerative clustering of LAEs on the GIIP distance with a diameter criterion.

Complete linkage (Lance & Williams; the paper's Cluster Analysis) merges the two clusters
whose farthest members are closest; cutting the tree at height ``diameter`` gives clusters
in which every pair of LAEs is within ``diameter`` atoms of difference. New LAEs join the
cluster of their nearest training LAE.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cluster_diameter", "cluster_diameters", "assign_nearest"]


def cluster_diameter(distances: np.ndarray, diameter: float) -> np.ndarray:
    """Cluster labels 0..k-1 (largest cluster first) of the LAEs of a symmetric GIIP
    distance matrix, complete linkage cut at ``diameter``: the largest distance between
    two members of a cluster is <= ``diameter``."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    d = np.asarray(distances, float)
    if len(d) == 1:
        return np.zeros(1, np.int64)
    condensed = squareform(0.5 * (d + d.T), checks=False)
    labels = fcluster(linkage(condensed, method="complete"), t=float(diameter),
                      criterion="distance") - 1
    sizes = np.bincount(labels)
    rank = np.empty_like(sizes)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(len(sizes))
    return rank[labels].astype(np.int64)


def cluster_diameters(distances: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Largest intra-cluster distance of each cluster (0 for singletons)."""
    labels = np.asarray(labels)
    out = np.zeros(labels.max() + 1 if len(labels) else 0)
    for k in range(len(out)):
        idx = np.flatnonzero(labels == k)
        if len(idx) > 1:
            out[k] = np.asarray(distances)[np.ix_(idx, idx)].max()
    return out


def assign_nearest(distances_to_train: np.ndarray, train_labels: np.ndarray) -> np.ndarray:
    """Cluster of each new LAE: that of its nearest training LAE."""
    d = np.atleast_2d(np.asarray(distances_to_train, float))
    return np.asarray(train_labels)[np.argmin(d, axis=1)]
