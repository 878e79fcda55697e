"""Neighbour lists in CSR layout (what a cell-list query returns) and gathers over them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NeighborList", "csr_entries"]


@dataclass
class NeighborList:
    """Neighbours of a range of centres in CSR layout.

    offsets : (n_centers+1,) int64; neighbours of centre c are entries offsets[c]:offsets[c+1].
    index : (M,) int64, index of the neighbour in the input arrays (for periodic frames the
        original atom index of the image).
    vectors : (M, 3) float64, r_neighbour - r_centre (image aware).
    distances : (M,) float64.
    Per centre the neighbours are sorted by (distance, global id of the neighbour).
    """

    offsets: np.ndarray
    index: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray

    @property
    def n_centers(self) -> int:
        return len(self.offsets) - 1

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def within(self, cutoff: float) -> NeighborList:
        """The neighbours at distance <= ``cutoff`` (a prefix per centre: lists are sorted),
        so one search at the largest radius serves descriptors with smaller ones."""
        keep = self.distances <= cutoff
        if keep.all():
            return self
        centre = np.repeat(np.arange(self.n_centers), np.diff(self.offsets))
        kept = np.bincount(centre[keep], minlength=self.n_centers)
        offsets = np.zeros(self.n_centers + 1, np.int64)
        np.cumsum(kept, out=offsets[1:])
        return NeighborList(offsets, self.index[keep], self.vectors[keep], self.distances[keep])

    def first(self, n: int | None) -> NeighborList:
        """The first (nearest) ``n`` neighbours of each centre (None: all)."""
        counts = np.diff(self.offsets)
        if n is None or not (counts > n).any():
            return self
        kept = np.minimum(counts, int(n))
        offsets = np.zeros(self.n_centers + 1, np.int64)
        np.cumsum(kept, out=offsets[1:])
        entries = csr_entries(self.offsets, np.arange(self.n_centers), kept)
        return NeighborList(offsets, self.index[entries], self.vectors[entries],
                            self.distances[entries])

    def take(self, rows: np.ndarray) -> NeighborList:
        """The lists of the centres ``rows`` (indices into this list's centres), in that
        order; a contiguous increasing range is a view."""
        rows = np.asarray(rows, np.int64)
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and (
                len(rows) < 2 or bool((np.diff(rows) == 1).all())):
            a, b = self.offsets[rows[0]], self.offsets[rows[-1] + 1]
            return NeighborList(self.offsets[rows[0]:rows[-1] + 2] - a, self.index[a:b],
                                self.vectors[a:b], self.distances[a:b])
        counts = self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        entries = csr_entries(self.offsets, rows, counts)
        return NeighborList(offsets, self.index[entries], self.vectors[entries],
                            self.distances[entries])

    @staticmethod
    def concatenate(first: NeighborList, second: NeighborList) -> NeighborList:
        """The centres of ``first`` followed by those of ``second``."""
        return NeighborList(np.concatenate([first.offsets, second.offsets[1:]
                                            + first.offsets[-1]]),
                            np.concatenate([first.index, second.index]),
                            np.concatenate([first.vectors, second.vectors]),
                            np.concatenate([first.distances, second.distances]))


def csr_entries(offsets: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices into the entries of a CSR list of the first ``lengths[k]`` entries of each row
    ``rows[k]``, row after row (e.g. the selected prefix of each sorted neighbour list)."""
    lengths = np.asarray(lengths, np.int64)
    first = np.cumsum(lengths) - lengths
    return (np.repeat(np.asarray(offsets)[rows] - first, lengths)
            + np.arange(int(lengths.sum()), dtype=np.int64))
