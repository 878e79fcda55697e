"""Training for your own material without LAMMPS (issue 14): from labelled frames (the dump
``insitu classify -o`` writes, or integer labels), classes following the data, seeded."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from insitu.cli import main
from insitu.model import Classifier
from insitu.resources import model_path
from insitu.testing import lattice, thermal, write_dump
from insitu.training.material import compact_classes

BOO = model_path("crystal-boo")


@pytest.fixture(scope="module")
def labelled_dumps(tmp_path_factory):
    """Thermal fcc Ni and bcc Fe frames, labelled by `insitu classify -o` (StructureType)."""
    folder = tmp_path_factory.mktemp("labelled")
    frames = [thermal(lattice("fcc", 3.52, 4), 0.08, seed=s) for s in range(3)] + \
             [thermal(lattice("bcc", 2.87, 5), 0.08, seed=10 + s) for s in range(3)]
    for i, f in enumerate(frames):
        f.step = i
    raw = write_dump(folder / "raw.dump", frames)
    out = folder / "labelled.dump"
    assert main(["classify", str(raw), "--model", str(BOO), "-o", str(out)]) == 0
    return out


def train(tmp_path, *extra) -> int:
    return main(["train", "material", *extra, "--descriptor", "boo", "--epochs", "8",
                 "--missing", "0,0.2", "--out", str(tmp_path / "m.onnx"),
                 "--data", str(tmp_path / "m.h5"), "--quiet"])


def test_labelled_frames_give_a_model_with_the_classes_of_the_data(tmp_path, labelled_dumps,
                                                                   capsys):
    assert train(tmp_path, "--labelled", str(labelled_dumps)) == 0
    out = capsys.readouterr().out
    clf = Classifier.load(tmp_path / "m.onnx")
    assert clf.classes == ["bcc", "fcc"]  # no hcp, cubic_diamond or liquid: not in the data
    assert clf.metadata["validation_accuracy"] >= 0.99
    assert "validation accuracy" in out and "| **fcc** |" in out
    card = (tmp_path / "m.md").read_text()
    assert "labelled.dump" in card and "by whole frame" in card and "insitu train material" in card
    fcc = thermal(lattice("fcc", 3.52, 4), 0.08, seed=99)
    assert clf.classify(fcc).fractions()["fcc"] > 0.95


def test_integer_labels_need_and_follow_the_class_list(tmp_path, labelled_dumps, capsys):
    assert train(tmp_path, "--labelled", str(labelled_dumps), "--label-column", "label") == 2
    assert "--classes" in capsys.readouterr().err
    names = ",".join(Classifier.load(BOO).classes)  # fcc,bcc,hcp,cubic_diamond,liquid
    assert train(tmp_path, "--labelled", str(labelled_dumps), "--label-column", "label",
                 "--classes", names) == 0
    assert Classifier.load(tmp_path / "m.onnx").classes == ["fcc", "bcc"]


def test_same_seed_same_model(tmp_path, labelled_dumps):
    probabilities = []
    frame = thermal(lattice("bcc", 2.87, 4), 0.15, seed=5)
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        assert train(folder, "--labelled", str(labelled_dumps), "--seed", "3") == 0
        with h5py.File(folder / "m.h5") as h5:
            split = h5["split"][...]
        probabilities.append(Classifier.load(folder / "m.onnx").classify(frame).probabilities)
        assert split.any() and not split.all()
    np.testing.assert_array_equal(probabilities[0], probabilities[1])


def test_compact_classes_keeps_only_classes_with_atoms(tmp_path):
    path = tmp_path / "fe_al.h5"
    classes = ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"]
    with h5py.File(path, "w") as h5:  # a Fe + Al dataset: bcc, fcc, liquid
        h5["label"] = np.array([1, 1, 0, 4, 0, 4])
        h5.attrs["classes"] = json.dumps(classes)
    assert compact_classes(path) == ["fcc", "bcc", "liquid"]
    with h5py.File(path) as h5:
        np.testing.assert_array_equal(h5["label"][...], [1, 1, 0, 2, 0, 2])
        assert json.loads(h5.attrs["classes"]) == ["fcc", "bcc", "liquid"]
    assert compact_classes(path) == ["fcc", "bcc", "liquid"]  # idempotent


def test_compact_classes_reads_a_dataset_another_process_holds_open(tmp_path):
    """Two fits of one dataset at once: the second found the file locked (it was opened for
    writing even when nothing changed) and died with an HDF5 lock error."""
    import subprocess
    import sys

    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as h5:
        h5["label"] = np.array([0, 1, 1])
        h5.attrs["classes"] = json.dumps(["fcc", "liquid"])
    holder = subprocess.Popen(
        [sys.executable, "-c", "import h5py, sys; f = h5py.File(sys.argv[1], 'r'); "
         "print('open', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert compact_classes(path) == ["fcc", "liquid"]
    finally:
        holder.communicate("")


def test_material_without_its_potential_is_bad_input(tmp_path, capsys):
    assert main(["train", "material", "--element", "Cu", "--structure", "fcc",
                 "--pair-style", "eam", "--melting-point", "1358", "--quiet",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    assert "--pair-coeff" in capsys.readouterr().err
    assert main(["train", "material", "--element", "Cu", "--structure", "fcc",
                 "--pair-style", "eam", "--pair-coeff", "* * No_such.eam",
                 "--melting-point", "1358", "--quiet", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "names no potential file" in capsys.readouterr().err
