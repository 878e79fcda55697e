"""The tests' own fixture models are deterministic: the same weights whatever the number of
threads the machine gives torch (a model trained differently under OMP_NUM_THREADS=1 once
labelled every atom unknown and made the rank-invariance test fail on a clean clone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

TESTS = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from conftest import make_random_model
from insitu.descriptors import NeighborsMap
from insitu.testing import thermal_ni
d = NeighborsMap(cutoff=4.6, n_grid=16)
make_random_model({out!r}, d, ["fcc", "bcc", "liquid"], "cnn", seed=3, threshold=0.5,
                  features=d.compute(thermal_ni(1200.0)))
"""


def weights(path: Path) -> list:
    return [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]


def test_fixture_model_is_identical_for_any_thread_count(tmp_path):
    made = {}
    for threads in ("1", "2"):
        out = tmp_path / f"model-{threads}.onnx"
        env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        subprocess.run([sys.executable, "-c", SCRIPT.format(tests=str(TESTS), out=str(out))],
                       env=env, check=True, timeout=300)
        made[threads] = weights(out)
    assert len(made["1"]) == len(made["2"]) > 0
    for a, b in zip(made["1"], made["2"]):
        np.testing.assert_array_equal(a, b)


def test_fixture_model_gives_varied_labels(nm_model):
    from insitu.descriptors import NeighborsMap
    from insitu.model import Classifier
    from insitu.testing import thermal_ni

    res = Classifier.load(nm_model).classify(thermal_ni(1200.0, seed=5))
    known = res.label_index[res.label_index >= 0]
    assert len(np.unique(known)) >= 2 and len(known) > 0.5 * len(res.label_index)
    assert isinstance(Classifier.load(nm_model).descriptor, NeighborsMap)
