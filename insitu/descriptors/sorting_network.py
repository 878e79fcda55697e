"""Sorting networks for the Neighbors Map kernel: Batcher's odd-even merge sort, pruned
to the outputs the image needs (the n_G nearest of each node), applied to 32 rows at once."""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

__all__ = ["batcher_pairs", "pruned_network", "network_table", "compare_exchange",
           "compare_exchange32"]


def batcher_pairs(n: int) -> list:
    """Compare-exchange pairs of Batcher's odd-even merge sort for n inputs."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def pruned_network(n: int, need: int) -> np.ndarray:
    """Sorting network for n inputs keeping only what the first `need` outputs depend on."""
    return _pruned_cached(int(n), int(min(need, n)))


@functools.cache
def _pruned_cached(n: int, need: int) -> np.ndarray:
    need = min(need, n)
    needed = set(range(need))
    keep = []
    for i, j in reversed(batcher_pairs(n)):
        if i in needed or j in needed:
            keep.append((i, j))
            needed.add(i)
            needed.add(j)
    return np.array(keep[::-1], dtype=np.int64).reshape(-1, 2)


_NET_TABLES: dict = {}


def network_table(node_counts, need: int):
    """CSR table of pruned networks: pairs for n nodes are net[off[n]:off[n+1]].

    Cached per `need` and grown when new node counts appear, so the per-chunk cost is a
    np.unique over the counts.
    """
    ns = {int(n) for n in np.unique(node_counts)}
    entry = _NET_TABLES.get(need)
    if entry is not None and ns <= entry[0]:
        return entry[1]
    known = set() if entry is None else entry[0]
    known = known | ns
    nmax = max(known) if known else 1
    off = np.zeros(nmax + 2, np.int64)
    sizes = np.zeros(nmax + 1, np.int64)
    parts = []
    for n in sorted(known):
        net = pruned_network(n, need)
        sizes[n] = len(net)
        parts.append(net)
    off[1:] = np.cumsum(sizes)
    net = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    table = (off, np.ascontiguousarray(net[:, 0]), np.ascontiguousarray(net[:, 1]))
    _NET_TABLES[need] = (known, table)
    return table




@njit(cache=True, error_model="numpy")
def compare_exchange32(X, net_i, net_j, p0, p1):
    """Compare-exchange X[i, :] / X[j, :] (32 lanes) for pairs p0..p1-1."""
    for p in range(p0, p1):
        i = net_i[p]
        j = net_j[p]
        for l in range(32):
            a = X[i, l]
            b = X[j, l]
            X[i, l] = min(a, b)
            X[j, l] = max(a, b)


@njit(cache=True, error_model="numpy")
def compare_exchange(X, net_i, net_j, p0, p1, lp):
    for p in range(p0, p1):
        i = net_i[p]
        j = net_j[p]
        for l in range(lp):
            a = X[i, l]
            b = X[j, l]
            X[i, l] = min(a, b)
            X[j, l] = max(a, b)
