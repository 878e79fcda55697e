"""A fitted GIIP model: training LAEs, their clusters and diffusion map, in one .npz file.

``fit_model`` runs the offline pipeline on a set of training LAEs (distance matrix,
complete-linkage clusters of bounded diameter, diffusion map, redundancy test);
``GIIPModel.project`` places new LAEs: distances to the training LAEs, Nystrom coordinates
(Eq. 19) and the cluster of the nearest training LAE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cluster import assign_nearest, cluster_diameter
from .diffusion import DiffusionMap, diffusion_map, nystrom, redundancy
from .distance import distance_matrix
from .lae import GIIPSettings, LAESet

__all__ = ["GIIPModel", "fit_model", "Projection"]

FORMAT = "insitu-giip-1"


@dataclass
class Projection:
    """coords (n, k) diffusion coordinates; cluster (n,) labels; nearest (n,) GIIP distance
    to the nearest training LAE (atoms of difference)."""

    coords: np.ndarray
    cluster: np.ndarray
    nearest: np.ndarray


@dataclass
class GIIPModel:
    """settings, training LAEs, diffusion map, cluster labels of the training LAEs, the
    cluster diameter, the redundancy r^2 of each coordinate, free-form metadata."""

    settings: GIIPSettings
    train: LAESet
    dmap: DiffusionMap
    labels: np.ndarray
    diameter: float
    redundancy_r2: np.ndarray
    meta: dict = field(default_factory=dict)
    center_types: tuple = ()

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def project(self, laes: LAESet, processes: int = 1, comm=None) -> Projection:
        """Diffusion coordinates (Nystrom, Eq. 19) and clusters of new LAEs."""
        d = distance_matrix(laes, self.train, self.settings, processes=processes, comm=comm)
        return self.project_distances(d)

    def project_distances(self, d: np.ndarray) -> Projection:
        """As :meth:`project`, from precomputed distances to the training LAEs."""
        return Projection(nystrom(self.dmap, d), assign_nearest(d, self.labels), d.min(axis=1))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        meta = {"format": FORMAT, "settings": self.settings.to_dict(),
                "diameter": self.diameter, "center_types": list(self.center_types),
                "meta": self.meta}
        np.savez_compressed(path, meta=json.dumps(meta), eps=self.dmap.eps,
                            density=self.dmap.density, eigenvalues=self.dmap.eigenvalues,
                            eigenvectors=self.dmap.eigenvectors, labels=self.labels,
                            redundancy_r2=self.redundancy_r2, **self.train.to_arrays())
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | Path) -> GIIPModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: not an insitu GIIP model (format "
                                 f"{meta.get('format')!r})")
            dmap = DiffusionMap(float(z["eps"]), z["density"], z["eigenvalues"],
                                z["eigenvectors"])
            return cls(GIIPSettings.from_dict(meta["settings"]), LAESet.from_arrays(z), dmap,
                       z["labels"].astype(np.int64), float(meta["diameter"]),
                       z["redundancy_r2"], meta.get("meta", {}),
                       tuple(meta.get("center_types", ())))


def fit_model(train: LAESet, settings: GIIPSettings, eps: float, diameter: float = 1.0,
              n_coords: int = 10, processes: int = 1, distances: np.ndarray | None = None,
              comm=None, progress: bool = False) -> tuple[GIIPModel, np.ndarray]:
    """The offline pipeline on training LAEs: GIIP distance matrix (Eqs. 9-13), clusters of
    diameter <= ``diameter`` atoms, diffusion map with kernel scale ``eps`` atoms
    (Eqs. 14-18), redundancy r^2 of the coordinates. Returns the model and the matrix."""
    if distances is None:
        distances = distance_matrix(train, None, settings, processes=processes, comm=comm,
                                    progress=progress)
    labels = cluster_diameter(distances, diameter)
    dmap = diffusion_map(distances, eps, n_coords)
    r2 = redundancy(dmap.eigenvectors)
    return GIIPModel(settings, train, dmap, labels, float(diameter), r2), distances
