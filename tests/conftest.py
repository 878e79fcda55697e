"""Shared fixtures: small random-weight ONNX models made with the real export path.

tests/unit/ runs without LAMMPS (seconds); tests/integration/ runs real LAMMPS under real
mpirun (marked ``integration``: ``pytest -m "not integration"`` skips it). Test modules are
imported with ``--import-mode=importlib`` (pyproject), so they do not import each other:
structures come from :mod:`insitu.testing`, LAMMPS runs from ``lammps_helpers`` (this folder
is put on sys.path below for it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from insitu.testing import thermal_ni

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # lammps_helpers


def pytest_collection_modifyitems(config, items) -> None:
    integration = TESTS / "integration"
    for item in items:
        if integration in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def make_random_model(path: Path, descriptor, classes, arch: str, seed: int = 0,
                      threshold: float = 0.4, features=None,
                      steps: int = 200) -> Path:
    """Random-weight classifier exported exactly like a trained one (metadata included)."""
    import torch

    from insitu.training.export import export_onnx
    from insitu.training.nets import build_model

    # One thread and a fixed seed: the same model for any OMP_NUM_THREADS on a machine
    # (multi-threaded reductions change the last bits, and Adam steps amplify them into
    # other labels). Other CPUs (AVX2 / AVX-512 kernels) still round differently: 200
    # steps make the model confident wherever it is trained (after 60 steps it left more
    # than half of the atoms known on an Intel Xeon, only 25 % on an AMD EPYC).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        model = train_fixture_model(build_model, descriptor, classes, arch, features, steps)
    finally:
        torch.set_num_threads(threads)
    return export_onnx(model, descriptor, classes, path, threshold=threshold,
                       training_summary={"note": "random weights, tests only"},
                       validation_accuracy=0.0)


def train_fixture_model(build_model, descriptor, classes, arch, features, steps):
    import torch

    model = build_model(arch, descriptor.feature_shape, len(classes), features=features)
    if features is not None:
        # A few optimiser steps towards labels derived from the descriptor itself (terciles
        # of the flattened feature sum), so that the test model's labels vary from atom to
        # atom with the local environment: invariance tests then have teeth.
        x = torch.as_tensor(np.asarray(features, np.float32))
        score = x.reshape(len(x), -1).sum(1)
        edges = torch.quantile(score, torch.linspace(0, 1, len(classes) + 1)[1:-1])
        y = torch.bucketize(score, edges)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    return model


@pytest.fixture(scope="session")
def random_model():
    """:func:`make_random_model`, for tests that need a model with other parameters."""
    return make_random_model


@pytest.fixture(scope="session")
def nm_model(tmp_path_factory) -> Path:
    from insitu.descriptors import NeighborsMap

    path = tmp_path_factory.mktemp("models") / "random-nm.onnx"
    descriptor = NeighborsMap(cutoff=4.6, n_grid=16)
    return make_random_model(path, descriptor, ["fcc", "bcc", "liquid"], "cnn", seed=3,
                             threshold=0.5, features=descriptor.compute(thermal_ni(1200.0)))


@pytest.fixture(scope="session")
def boo_model(tmp_path_factory) -> Path:
    from insitu.descriptors import Steinhardt

    path = tmp_path_factory.mktemp("models") / "random-boo.onnx"
    descriptor = Steinhardt(ls=(4, 6, 8), n_neighbors=12, search_cutoff=4.0)
    return make_random_model(path, descriptor, ["fcc", "bcc", "liquid"], "mlp", seed=1,
                             threshold=0.5, features=descriptor.compute(thermal_ni(1200.0)))
