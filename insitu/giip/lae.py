"""Local atomic environments (LAEs) for the GIIP distance: settings, weights, extraction.

An LAE is the set of neighbours of a centre atom within the cutoff, as vectors from the
centre, each with a weight w = f(|x|) g(species) (Hardin et al., Eq. 11) and a species
channel. f is 1 below ``inner`` and falls to 0 at ``outer`` with a cubic spline
(1 - 3u^2 + 2u^3, u = (r - inner) / (outer - inner): value and slope continuous), so the
distance is continuous and smooth in the atomic positions. Species: ``none`` (g = 1),
``sign`` (g = +1 / -1 per atom type, binary systems: a swapped species costs ~2 atoms of
difference) or ``vector`` (one channel per type, Eq. 11's n-vectors). The centre atom is not
part of the LAE (the sum of the weights is then the coordination number, as in the paper).

Neighbours come from :mod:`insitu.locality` (cell list over a periodic frame with its images,
or over an MPI rank's local + ghost atoms), so offline and in-situ LAEs are the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from insitu.locality import NeighborQuery, Points

__all__ = ["GIIPSettings", "LAESet", "radial_weight", "extract_laes", "concat_laes"]

SPECIES_MODES = ("none", "sign", "vector")


@dataclass(frozen=True)
class GIIPSettings:
    """Parameters of the GIIP distance (paper values: 2D LJ sigma 0.5, inner 1.3, outer
    1.75 sigma_LJ; NiNb glass sigma 1.0, inner 3.0, outer 4.0 Angstrom, sign species).

    dim: 2 (x, y used) or 3. sigma, inner, outer: lengths in the system's units.
    species: none | sign | vector; type_signs: g of atom types 1, 2, ... for ``sign``.
    coarse_deg: spacing of the coarse orientation grid (default 20 deg: on 48 pairs of
    Cu-Zr glass LAEs within 0.05 atoms of a 5 deg search, mean 0.0035, at 1/45 of its
    cost; 30 deg is 2x faster but off by > 0.05 atoms for 10 % of the pairs;
    benchmarks/giip_distance.py measures it on a disordered binary fcc; use 10 in 2D);
    n_starts: grid optima refined;
    improper: search O(d) (rotations and rotoinversions) instead of SO(d)."""

    dim: int = 3
    sigma: float = 1.0
    inner: float = 3.0
    outer: float = 4.0
    species: str = "none"
    type_signs: tuple = (1.0, -1.0)
    coarse_deg: float = 20.0
    n_starts: int = 4
    improper: bool = True
    max_iter: int = 50

    def __post_init__(self) -> None:
        if self.dim not in (2, 3):
            raise ValueError(f"GIIPSettings: dim must be 2 or 3, got {self.dim}")
        if not 0 < self.inner <= self.outer:
            raise ValueError(f"GIIPSettings: need 0 < inner <= outer, got {self.inner}, "
                             f"{self.outer}")
        if not self.sigma > 0:
            raise ValueError(f"GIIPSettings: sigma must be positive, got {self.sigma}")
        if self.species not in SPECIES_MODES:
            raise ValueError(f"GIIPSettings: species must be one of {SPECIES_MODES}")
        object.__setattr__(self, "type_signs", tuple(float(x) for x in self.type_signs))

    @property
    def inv4s2(self) -> float:
        """1 / (4 sigma^2), the exponent factor of Eq. 13."""
        return 1.0 / (4.0 * self.sigma ** 2)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GIIPSettings:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class LAESet:
    """n padded LAEs: positions (n, m, dim) relative to the centre, weights (n, m),
    channels (n, m) int64, counts (n,) int64; entries beyond counts[i] are padding."""

    positions: np.ndarray
    weights: np.ndarray
    channels: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.counts)

    def subset(self, index) -> LAESet:
        """The LAEs selected by an index array or boolean mask."""
        return LAESet(np.ascontiguousarray(self.positions[index]),
                      np.ascontiguousarray(self.weights[index]),
                      np.ascontiguousarray(self.channels[index]),
                      np.ascontiguousarray(self.counts[index]))

    def weight_sums(self) -> np.ndarray:
        """Sum of the weights of each LAE: the (smooth) coordination number, or with sign
        species a linear function of the composition of the environment."""
        return self.weights.sum(axis=1)

    def to_arrays(self, prefix: str = "lae_") -> dict:
        return {f"{prefix}positions": self.positions, f"{prefix}weights": self.weights,
                f"{prefix}channels": self.channels, f"{prefix}counts": self.counts}

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "lae_") -> LAESet:
        return cls(np.ascontiguousarray(arrays[f"{prefix}positions"], dtype=np.float64),
                   np.ascontiguousarray(arrays[f"{prefix}weights"], dtype=np.float64),
                   np.ascontiguousarray(arrays[f"{prefix}channels"], dtype=np.int64),
                   np.ascontiguousarray(arrays[f"{prefix}counts"], dtype=np.int64))


def radial_weight(r: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """f(|x|) of Eq. 11: 1 below ``inner``, cubic spline to 0 at ``outer``, 0 beyond."""
    r = np.asarray(r, float)
    if outer <= inner:
        return (r < inner).astype(float)
    u = np.clip((r - inner) / (outer - inner), 0.0, 1.0)
    return 1.0 - 3.0 * u ** 2 + 2.0 * u ** 3


def species_weights(types: np.ndarray, settings: GIIPSettings) -> tuple[np.ndarray, np.ndarray]:
    """g(species) of Eq. 11 and the channel of atoms of the given 1-based types."""
    types = np.asarray(types, np.int64)
    if settings.species == "sign":
        signs = np.asarray(settings.type_signs, float)
        if types.size and types.max() > len(signs):
            raise ValueError(f"sign species: atom type {types.max()} has no sign in "
                             f"type_signs={settings.type_signs}")
        return signs[types - 1], np.zeros(len(types), np.int64)
    if settings.species == "vector":
        return np.ones(len(types)), types - 1
    return np.ones(len(types)), np.zeros(len(types), np.int64)


def extract_laes(system, centers: np.ndarray, settings: GIIPSettings,
                 neighbors: NeighborQuery | None = None) -> LAESet:
    """LAEs of the atoms ``centers`` (indices into the frame, or into the first n_centers
    of a :class:`Points` set) of ``system`` (a periodic :class:`insitu.Frame` or open
    :class:`Points`); neighbours within ``settings.outer``. 2D frames use x, y only (give
    them a non-periodic z: a thin periodic z would add the atoms' own images)."""
    if neighbors is None:
        if settings.dim == 2 and hasattr(system, "pbc") and system.pbc[2]:
            from insitu.frame import Frame

            system = Frame(system.positions, system.cell, [*system.pbc[:2], False],
                           system.types, system.ids, system.step, system.info)
        neighbors = NeighborQuery.from_system(system, settings.outer)
    points: Points = neighbors.points
    nl = neighbors.cells.query_points(np.asarray(centers, np.int64))
    dist = nl.distances
    vec = nl.vectors[:, :settings.dim]
    keep = dist < settings.outer
    if settings.dim == 2:
        keep &= np.abs(nl.vectors[:, 2]) < 1e-6 * max(settings.outer, 1.0)
    g, chan = species_weights(points.types[nl.index], settings)
    w = radial_weight(dist, settings.inner, settings.outer) * g
    keep &= w != 0.0
    centre = np.repeat(np.arange(nl.n_centers), nl.counts())[keep]
    counts = np.bincount(centre, minlength=nl.n_centers).astype(np.int64)
    m = max(int(counts.max()) if len(counts) else 0, 1)
    slot = np.arange(len(centre)) - np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.zeros((nl.n_centers, m, settings.dim))
    wts = np.zeros((nl.n_centers, m))
    chs = np.zeros((nl.n_centers, m), np.int64)
    pos[centre, slot] = vec[keep]
    wts[centre, slot] = w[keep]
    chs[centre, slot] = chan[keep]
    return LAESet(pos, wts, chs, counts)


def concat_laes(sets: list[LAESet]) -> LAESet:
    """One padded set from several (padding to the largest LAE)."""
    sets = [s for s in sets if len(s)]
    if not sets:
        raise ValueError("concat_laes: no LAEs")
    m = max(s.positions.shape[1] for s in sets)
    dim = sets[0].positions.shape[2]

    def pad(a, shape_tail):
        out = np.zeros((len(a), m, *shape_tail), a.dtype)
        out[:, :a.shape[1]] = a
        return out

    return LAESet(np.concatenate([pad(s.positions, (dim,)) for s in sets]),
                  np.concatenate([pad(s.weights, ()) for s in sets]),
                  np.concatenate([pad(s.channels, ()) for s in sets]),
                  np.concatenate([s.counts for s in sets]))
