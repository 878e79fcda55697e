"""`insitu train material` for an element the shipped models were not trained on (Cu; they
were trained on Fe, Al, Zr and Si), with real LAMMPS runs: the model passes its own
validation table (>= 99 %), its classes are those of the data, the same seed gives the
same data and model. Small cells, short ramps and few epochs keep it to seconds; the
README's full-size command is the same with the defaults."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from insitu.cli import main
from insitu.model import Classifier
from insitu.testing import lattice, thermal

CU = ["--element", "Cu", "--structure", "fcc", "--pair-style", "eam",
      "--pair-coeff", "* * Cu_u3.eam", "--melting-point", "1358"]
SMALL = ["--cells", "3", "--ramp-ps", "5", "--missing", "0,0.3", "--descriptor", "boo",
         "--epochs", "30", "--seed", "7", "--quiet"]


def train_cu(folder) -> int:
    return main(["train", "material", *CU, *SMALL, "--out", str(folder / "cu-boo.onnx"),
                 "--data", str(folder / "cu.h5")])


@pytest.fixture(scope="module")
def cu_runs(tmp_path_factory):
    folders = [tmp_path_factory.mktemp(name) for name in ("first", "second")]
    return folders, [train_cu(f) for f in folders]


def test_new_element_passes_its_own_validation_table(cu_runs, capsys):
    (folder, _), (rc, _) = cu_runs
    assert rc == 0  # exit 1 would mean validation accuracy < --min-accuracy 0.99
    clf = Classifier.load(folder / "cu-boo.onnx")
    assert clf.classes == ["fcc", "liquid"]  # no bcc, hcp or cubic_diamond: not in the data
    assert clf.metadata["validation_accuracy"] >= 0.99
    card = (folder / "cu-boo.md").read_text()
    assert "Cu_u3.eam" in card and "3.615" in card and "| **fcc** |" in card
    assert ("insitu train material --element Cu --structure fcc --pair-style eam "
            "--pair-coeff '* * Cu_u3.eam' --melting-point 1358.0") in card
    assert clf.classify(thermal(lattice("fcc", 3.615, 4), 0.1, seed=1)).fractions()["fcc"] > 0.95


def test_same_seed_same_data_and_model(cu_runs):
    folders, codes = cu_runs
    assert codes == [0, 0]
    data = []
    for folder in folders:
        with h5py.File(folder / "cu.h5") as h5:
            data.append((h5["boo"][...], h5["label"][...], h5["split"][...]))
    for a, b in zip(*data):
        np.testing.assert_array_equal(a, b)
    frame = thermal(lattice("fcc", 3.615, 3), 0.35, seed=2)
    p = [Classifier.load(f / "cu-boo.onnx").classify(frame).probabilities for f in folders]
    np.testing.assert_array_equal(p[0], p[1])
