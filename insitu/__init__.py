"""insitu: learned per-atom structural analysis inside running LAMMPS jobs.

Offline API::

    from insitu import Frame, NeighborsMap, Steinhardt, Classifier
    frame = insitu.read_lammps_dump("dump.atom")
    maps = NeighborsMap(cutoff=5.0).compute(frame)          # (N, 1, 32, 32) float32
    result = Classifier.load("models/crystal-nm.onnx").classify(frame)

In situ: see :mod:`insitu.lammps_fix` and the README.
"""

__version__ = "0.1.0"

from insitu.descriptors import descriptor_from_metadata
from insitu.frame import Frame, iter_lammps_dump, read_lammps_data, read_lammps_dump
from insitu.neighbors_map import NeighborsMap
from insitu.runtime import ClassificationResult, Classifier
from insitu.steinhardt import Steinhardt

__all__ = ["Frame", "NeighborsMap", "Steinhardt", "Classifier", "ClassificationResult",
           "read_lammps_dump", "read_lammps_data", "iter_lammps_dump",
           "descriptor_from_metadata", "__version__"]
