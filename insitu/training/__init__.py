"""Offline training pipeline (PyTorch). Only this subpackage imports torch.

Public entry points:

- :func:`insitu.training.datagen.generate_crystal_dataset` - LAMMPS runs -> HDF5 descriptors
  (``insitu train data``; :func:`~insitu.training.datagen.add_descriptor`,
  :func:`~insitu.training.datagen.default_descriptors`).
- :func:`insitu.training.train.train_classifier` - fit a CNN / MLP with a split by group.
- :func:`insitu.training.export.export_onnx` - ONNX with the metadata the runtime needs.
- :func:`insitu.training.train.fit_from_hdf5` - the ``insitu train fit`` command.
- :mod:`insitu.training.ramp_training` - auto-labelled training on the papers' ramps
  (``insitu ramp train``), with :mod:`~insitu.training.autolabel` (snapshot windows) and
  :mod:`~insitu.training.ramp_systems` (the registry of ramp systems).
- :mod:`insitu.training.model_card` - the model cards written next to the models.

The in-situ runtime (:mod:`insitu.model`) never imports this package.
"""

from __future__ import annotations

__all__ = ["train_classifier", "export_onnx", "build_model", "generate_crystal_dataset",
           "fit_from_hdf5"]


def __getattr__(name):  # lazy: importing insitu.training must not pull in torch by itself
    if name in ("train_classifier", "fit_from_hdf5"):
        from . import train
        return getattr(train, name)
    if name == "export_onnx":
        from .export import export_onnx
        return export_onnx
    if name == "build_model":
        from .nets import build_model
        return build_model
    if name == "generate_crystal_dataset":
        from .datagen import generate_crystal_dataset
        return generate_crystal_dataset
    raise AttributeError(name)
