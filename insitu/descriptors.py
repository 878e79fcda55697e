"""Common interface of the per-atom descriptors and the factory from model metadata.

Every descriptor (:class:`insitu.NeighborsMap`, :class:`insitu.Steinhardt`) offers

* ``compute(frame)`` -- all atoms of a periodic :class:`~insitu.frame.Frame`, chunked inside;
* ``iter_compute(frame, chunk_size)`` -- the same, yielding ``(start, stop, features)``;
* ``compute_open(positions, types, ids, n_centers)`` and
  ``iter_open(positions, types, ids, n_centers, chunk_size)`` -- the first ``n_centers``
  points of an open set (an MPI rank's local + ghost atoms, no wrapping);
* ``required_cutoff`` -- radius around a centre inside which all atoms must be present;
* ``feature_shape``, ``kind``, ``to_metadata()`` / ``from_metadata(d)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .neighbors import CellList

__all__ = ["Descriptor", "descriptor_from_metadata"]


def zeros(shape, dtype) -> np.ndarray:
    """np.zeros without calloc: large calloc'ed arrays are faulted in 4 KiB pages, while
    np.empty lets NumPy ask for huge pages (10x faster to first touch for NM outputs)."""
    a = np.empty(shape, dtype=dtype)
    a.fill(0)
    return a


class Descriptor:
    """Base class: chunked evaluation over a cell list, in periodic or open mode."""

    kind: str = ""
    dtype = np.float64
    chunk_size: int = 4096

    # -- to be provided by subclasses -------------------------------------------------
    @property
    def required_cutoff(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def feature_shape(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_metadata(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_metadata(cls, d: dict):
        params = {k: v for k, v in d.items() if k != "kind"}
        if d.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"{cls.__name__}.from_metadata: kind is {d.get('kind')!r}, "
                             f"expected {cls.kind!r}")
        return cls(**params)

    def _prepare(self, cl: CellList, types, ids, open_mode: bool):
        """Return a context object used by _chunk (may rebuild the cell list)."""
        raise NotImplementedError  # pragma: no cover

    def _chunk(self, ctx, start: int, stop: int, out=None) -> np.ndarray:
        """Features of centres start..stop-1, written into `out` (zeroed) if given."""
        raise NotImplementedError  # pragma: no cover

    def check_types(self, types_present) -> None:
        """Raise ValueError if the descriptor cannot handle one of the atom types."""

    # -- search radius used to build the cell list (may exceed required_cutoff) -------
    def _search_radius(self) -> float:
        return self.required_cutoff

    # -- public API ----------------------------------------------------------------------
    def iter_compute(self, frame, chunk_size: int | None = None
                     ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield (start, stop, features of atoms start..stop-1) for a periodic frame."""
        ctx = self._periodic_context(frame)
        yield from self._iterate(ctx, len(frame.positions), chunk_size)

    def _periodic_context(self, frame):
        types = np.ascontiguousarray(frame.types, dtype=np.int64)
        ids = np.ascontiguousarray(frame.ids, dtype=np.int64)
        if len(types):
            self.check_types(np.unique(types))
        cl = CellList.periodic(frame.positions, frame.cell, frame.pbc, ids,
                               self._search_radius())
        return self._prepare(cl, types, ids, open_mode=False)

    def compute(self, frame) -> np.ndarray:
        """Descriptors of all atoms of a frame, shape (N,) + feature_shape."""
        n = len(frame.positions)
        out = zeros((n,) + tuple(self.feature_shape), dtype=self.dtype)
        if n == 0:
            return out
        ctx = self._periodic_context(frame)
        step = int(self.chunk_size)
        for start in range(0, n, step):
            stop = min(n, start + step)
            self._chunk(ctx, start, stop, out[start:stop])
        return out

    def iter_open(self, positions, types, ids, n_centers: int, chunk_size: int | None = None
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield (start, stop, features) for the first n_centers points of an open set
        (local atoms first, then ghosts; no wrapping)."""
        positions = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
        n = len(positions)
        types = np.ascontiguousarray(types, dtype=np.int64).reshape(n)
        ids = (np.arange(1, n + 1, dtype=np.int64) if ids is None
               else np.ascontiguousarray(ids, dtype=np.int64).reshape(n))
        n_centers = int(n_centers)
        if n:
            self.check_types(np.unique(types))
        cl = CellList.open(positions, ids, n_centers, self._search_radius())
        ctx = self._prepare(cl, types, ids, open_mode=True)
        yield from self._iterate(ctx, n_centers, chunk_size)

    def compute_open(self, positions, types, ids, n_centers: int) -> np.ndarray:
        """Descriptors of the first n_centers points of an open set."""
        out = zeros((int(n_centers),) + tuple(self.feature_shape), dtype=self.dtype)
        for start, stop, feats in self.iter_open(positions, types, ids, n_centers):
            out[start:stop] = feats
        return out

    def _iterate(self, ctx, n: int, chunk_size: int | None):
        step = int(chunk_size or self.chunk_size)
        if step <= 0:
            raise ValueError(f"chunk_size must be positive, got {step}")
        for start in range(0, n, step):
            stop = min(n, start + step)
            yield start, stop, self._chunk(ctx, start, stop)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.to_metadata().items() if k != "kind")
        return f"{type(self).__name__}({params})"


def descriptor_from_metadata(d: dict) -> Descriptor:
    """Build a descriptor from ``to_metadata()`` output (e.g. read from a model file)."""
    from .neighbors_map import NeighborsMap
    from .steinhardt import Steinhardt

    kinds = {NeighborsMap.kind: NeighborsMap, Steinhardt.kind: Steinhardt}
    kind = d.get("kind")
    if kind not in kinds:
        raise ValueError(f"unknown descriptor kind {kind!r}; known: {sorted(kinds)}")
    return kinds[kind].from_metadata(d)
