"""Unsupervised structure: the GIIP distance, clustering, diffusion maps (Hardin et al.).

Each local atomic environment (LAE) is a sum of unit-norm Gaussians weighted by a smooth
radial weight and a species weight (:mod:`.lae`, Eqs. 3, 4, 11); the GIIP distance is the
L2 distance between those densities, analytic (Eq. 13), minimised over orientations
(Eq. 10; :mod:`.kernel`, :mod:`.rotations`, :mod:`.distance`). Training LAEs are clustered
with complete linkage at a bounded diameter (:mod:`.cluster`) and embedded with a diffusion
map; new LAEs are placed by the Nystrom extension (:mod:`.diffusion`, Eqs. 14-19). A fitted
model is one .npz file (:mod:`.model`); :mod:`.pipeline` runs it on LAMMPS dumps.
"""

from .cluster import assign_nearest, cluster_diameter, cluster_diameters
from .diffusion import DiffusionMap, diffusion_map, linear_r2, nystrom, redundancy
from .distance import distance_matrix, giip_distance, giip_inner, self_inner
from .lae import GIIPSettings, LAESet, concat_laes, extract_laes, radial_weight
from .model import GIIPModel, Projection, fit_model
from .rotations import random_rotation, rotation_grid

__all__ = ["GIIPSettings", "LAESet", "extract_laes", "concat_laes", "radial_weight",
           "giip_inner", "giip_distance", "self_inner", "distance_matrix", "rotation_grid",
           "random_rotation", "cluster_diameter", "cluster_diameters", "assign_nearest",
           "DiffusionMap", "diffusion_map", "linear_r2", "nystrom", "redundancy", "GIIPModel",
           "Projection", "fit_model"]
