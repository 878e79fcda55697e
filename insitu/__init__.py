"""insitu: learned per-atom structural analysis inside running LAMMPS jobs.

Offline API::

    import insitu
    frame = insitu.read_lammps_dump("dump.atom")
    maps = insitu.NeighborsMap(cutoff=5.0).compute(frame)     # (N, 1, 32, 32) float32
    result = insitu.Classifier.load("models/crystal-nm.onnx").classify(frame)

Packages, in the order data flows: :mod:`insitu.locality` (neighbours),
:mod:`insitu.descriptors` (features), :mod:`insitu.model` (probabilities),
:mod:`insitu.coupling` (LAMMPS bridge and MPI reductions), :mod:`insitu.io` (files and the
phase log), :mod:`insitu.analysis` (ramps, validation, plots), :mod:`insitu.training`
(offline, PyTorch), :mod:`insitu.cli` (the command line). In situ: see the README.
"""

__version__ = "0.2.0"

from .descriptors import NeighborsMap, Steinhardt, descriptor_from_metadata
from .frame import Frame
from .io import iter_lammps_dump, read_lammps_data, read_lammps_dump
from .model import ClassificationResult, Classifier

__all__ = ["Frame", "NeighborsMap", "Steinhardt", "Classifier", "ClassificationResult",
           "read_lammps_dump", "read_lammps_data", "iter_lammps_dump",
           "descriptor_from_metadata", "__version__"]
