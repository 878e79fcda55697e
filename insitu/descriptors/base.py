"""Common interface of the per-atom descriptors and their registry by kind.

A descriptor is configured once (``__init__`` only stores its parameters) and run with
``compute(system, neighbors=None)``, where ``system`` is an :class:`insitu.Frame` (periodic
images are added) or an open :class:`insitu.locality.Points` set (an MPI rank's local +
ghost atoms). Both go through the same code: a frame becomes points first. ``neighbors`` is
an optional :class:`insitu.locality.NeighborQuery` shared by several descriptors; each keeps
the neighbours within its own radius.

Parameters come from the constructor signature (scikit-learn's ``get_params``), so model
metadata round-trips with ``to_metadata()`` / ``from_metadata()`` without hand-kept lists.
A new descriptor is one module with a subclass decorated by :func:`register_descriptor`,
imported in ``insitu/descriptors/__init__.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np

from ..locality import CellList, NeighborList, NeighborQuery, Points, as_points, present_types

__all__ = ["Descriptor", "register_descriptor", "descriptor_from_metadata", "DESCRIPTOR_KINDS",
           "empty_array", "described_mask", "MAX_CUTOFF_ANGSTROM"]

MAX_CUTOFF_ANGSTROM = 20.0
"""Largest descriptor radius accepted (a model asking for more is corrupt or mistaken: the
neighbour search would hold thousands of atoms per centre)."""

DESCRIPTOR_KINDS: dict[str, type] = {}
"""kind string (as stored in model metadata) -> descriptor class."""


def register_descriptor(cls: type) -> type:
    """Class decorator: make ``cls`` buildable from metadata under ``cls.kind``."""
    if not cls.kind or cls.kind in DESCRIPTOR_KINDS:
        raise ValueError(f"descriptor kind {cls.kind!r} is empty or registered twice")
    DESCRIPTOR_KINDS[cls.kind] = cls
    return cls


def descriptor_from_metadata(d: dict) -> Descriptor:
    """Build a descriptor from ``to_metadata()`` output (e.g. read from a model file)."""
    if not isinstance(d, dict):
        raise ValueError(f"descriptor metadata must be a JSON object, got {type(d).__name__}")
    kind = d.get("kind")
    if kind not in DESCRIPTOR_KINDS:
        raise ValueError(f"unknown descriptor kind {kind!r}; known: {sorted(DESCRIPTOR_KINDS)}")
    return DESCRIPTOR_KINDS[kind].from_metadata(d)


def empty_array(shape, dtype) -> np.ndarray:
    """Zeroed array without calloc: large calloc'ed arrays are faulted in 4 KiB pages, while
    np.empty lets NumPy ask for huge pages (10x faster to first touch for NM outputs)."""
    a = np.empty(shape, dtype=dtype)
    a.fill(0)
    return a


def described_mask(features) -> np.ndarray:
    """(N,) bool: rows of per-atom ``features`` without NaN, the atoms the descriptor could
    describe (a descriptor marks the others, e.g. isolated atoms, with NaN); checked in
    blocks of 65,536 rows, so a large dataset is not copied whole."""
    flat = np.asarray(features).reshape(len(features), -1)
    described = np.ones(len(flat), bool)
    for s in range(0, len(flat), 65536):
        described[s:s + 65536] = np.isfinite(flat[s:s + 65536]).all(axis=1)
    return described


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Descriptor:
    """Base class: chunked evaluation of per-atom features over an open point set."""

    kind: str = ""
    dtype = np.float64
    chunk_size: int = 4096

    # -- parameters -----------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> dict:
        """The constructor's parameters and their values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def to_metadata(self) -> dict:
        """JSON-ready ``{"kind": ..., **get_params()}``."""
        return {"kind": self.kind, **_jsonable(self.get_params())}

    @classmethod
    def from_metadata(cls, d: dict) -> Descriptor:
        if d.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"{cls.__name__}.from_metadata: kind is {d.get('kind')!r}, "
                             f"expected {cls.kind!r}")
        params = {k: v for k, v in d.items() if k != "kind"}
        unknown = sorted(set(params) - set(cls._param_names()))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown parameters {unknown}")
        try:
            return cls(**params)
        except (TypeError, ValueError, OverflowError) as exc:  # e.g. a string for a number
            raise ValueError(f"{cls.__name__}: bad parameter value in "
                             f"{str(params)[:300]} ({exc})") from None

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- to be provided by subclasses -----------------------------------------------------
    @property
    def required_cutoff(self) -> float:  # pragma: no cover - abstract
        """Radius around a centre inside which every atom must be present."""
        raise NotImplementedError

    @property
    def search_radius(self) -> float:
        """Radius of the neighbour search (default: the required cutoff)."""
        return self.required_cutoff

    @property
    def exchange_cutoff(self) -> float:
        """The required cutoff when what the descriptor reads of its ghost neighbours comes
        from the ranks that own them (``exchange``, in situ; q-bar reads its neighbours'
        q_lm); default: the required cutoff (nothing to exchange)."""
        return self.required_cutoff

    @property
    def feature_shape(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_types(self, types_present) -> None:
        """Raise ValueError if the descriptor cannot handle one of the atom types."""

    def _prepare(self, cells: CellList, points: Points):
        """Per-call context passed to :meth:`_chunk`."""
        raise NotImplementedError  # pragma: no cover

    def _chunk(self, ctx, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Features of centres start..stop-1, written into ``out`` (zeroed) if given."""
        raise NotImplementedError  # pragma: no cover

    def _finish(self, ctx) -> None:
        """Called when a computation's last chunk is done (work arrays to keep, if any)."""

    def _share(self, ctx, exchange, points) -> None:
        """With an ``exchange`` (collective; :class:`insitu.coupling.halo.Halo`), receive what
        the ghost atoms of ``points`` need from their owners (called once per computation
        on every rank, with or without centres). Default: nothing to exchange."""

    # -- shared machinery -----------------------------------------------------------------
    @property
    def max_neighbors(self) -> int | None:
        """Most neighbours of a centre the descriptor reads (the nearest first; None: all
        within its radius): the search keeps no more."""
        return None

    def neighbors_of(self, cells: CellList, centers: np.ndarray) -> NeighborList:
        """Sorted neighbours of point indices ``centers`` within this descriptor's radius
        (at most :attr:`max_neighbors` of them)."""
        nl = cells.query_points(centers, self.max_neighbors)
        return nl if cells.cutoff <= self.search_radius else nl.within(self.search_radius)

    def _context(self, system, neighbors: NeighborQuery | None, exchange=None):
        if neighbors is None:
            # points to the required cutoff, but the search only within the descriptor's
            # radius (q-bar needs points to 2 r, its searches stay within r)
            neighbors = NeighborQuery.from_system(system, self.required_cutoff,
                                                  self.search_radius, self.max_neighbors)
        elif neighbors.cutoff < self.search_radius:
            raise ValueError(f"{type(self).__name__} needs neighbours within "
                             f"{self.search_radius} but the shared query has cutoff "
                             f"{neighbors.cutoff}")
        points = neighbors.points
        if len(points.types):
            self.check_types(present_types(points.types))
        ctx = self._prepare(neighbors.cells, points)
        if exchange is not None:
            self._share(ctx, exchange, points)
        return points.n_centers, ctx

    def iter_compute(self, system, neighbors: NeighborQuery | None = None,
                     chunk_size: int | None = None, reuse: bool = False,
                     exchange=None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, features of centres start..stop-1)``; memory is bounded by
        the chunk, not by the number of atoms. ``reuse``: every chunk is written into one
        buffer (valid until the next chunk is asked for), which spares the page faults of
        a fresh array per chunk (the in-situ path consumes each chunk at once).
        ``exchange``: in situ, values of ghost atoms from their owners (collective: every
        rank must start the iteration, with or without centres; points then need to reach
        :attr:`exchange_cutoff` only)."""
        step = int(chunk_size or self.chunk_size)
        if step <= 0:
            raise ValueError(f"chunk_size must be positive, got {step}")
        n, ctx = self._context(system, neighbors, exchange)
        buffer = empty_array((min(step, n),) + tuple(self.feature_shape), self.dtype) \
            if reuse and n else None
        for start in range(0, n, step):
            stop = min(n, start + step)
            out = None
            if buffer is not None:
                out = buffer[:stop - start]
                if start:
                    out.fill(0)
            yield start, stop, self._chunk(ctx, start, stop, out)
        self._finish(ctx)

    def compute(self, system, neighbors: NeighborQuery | None = None,
                exchange=None) -> np.ndarray:
        """Features of every centre of ``system``, shape (N,) + feature_shape
        (``exchange``: as in :meth:`iter_compute`)."""
        points = as_points(system, self.required_cutoff) if neighbors is None else None
        n = (neighbors.points if points is None else points).n_centers
        out = empty_array((n,) + tuple(self.feature_shape), dtype=self.dtype)
        if n == 0 and exchange is None:
            return out
        n, ctx = self._context(points, neighbors, exchange)
        for start in range(0, n, self.chunk_size):
            stop = min(n, start + self.chunk_size)
            self._chunk(ctx, start, stop, out[start:stop])
        self._finish(ctx)
        return out
