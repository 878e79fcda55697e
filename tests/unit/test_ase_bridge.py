"""ASE interoperability (issue 14): Frame.from_ase / to_ase, Classifier.classify on an
ase.Atoms, extended XYZ read through ASE (``insitu classify``)."""

from __future__ import annotations

import ase
import ase.build
import ase.io
import numpy as np
import pytest

from insitu import Frame
from insitu.cli import main
from insitu.io.ase_bridge import frame_from_ase, iter_frames
from insitu.io.lammps_dump import read_lammps_dump
from insitu.model import Classifier
from insitu.resources import model_path
from insitu.testing import lattice, random_types, thermal

BOO = model_path("crystal-boo")
CUZR = model_path("cuzr-liquid-amorphous")


def triclinic_cuzr() -> Frame:
    base = random_types(thermal(lattice("fcc", 3.7, 3), 0.05, seed=2), [1, 2], seed=3)
    shear = np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [0.2, -0.1, 1.0]])
    frame = Frame(base.positions @ shear, base.cell @ shear, base.pbc, base.types,
                  base.ids[::-1].copy(), step=40)
    frame.info["type_names"] = {1: "Zr", 2: "Cu"}  # LAMMPS numbering, not alphabetical
    return frame


def test_round_trip_keeps_positions_cell_types_ids_and_step():
    frame = triclinic_cuzr()
    atoms = frame.to_ase()
    assert isinstance(atoms, ase.Atoms)
    assert atoms.get_chemical_symbols() == ["Zr" if t == 1 else "Cu" for t in frame.types]
    back = Frame.from_ase(atoms)
    np.testing.assert_array_equal(back.positions, frame.positions)
    np.testing.assert_array_equal(back.cell, frame.cell)
    np.testing.assert_array_equal(back.pbc, frame.pbc)
    np.testing.assert_array_equal(back.types, frame.types)  # Zr stays type 1
    np.testing.assert_array_equal(back.ids, frame.ids)
    assert back.step == 40 and back.info["type_names"] == {1: "Zr", 2: "Cu"}


def test_types_from_symbols_sorted_or_by_the_models_names():
    atoms = ase.build.bulk("Cu", "fcc", a=3.7, cubic=True).repeat(3)
    symbols = atoms.get_chemical_symbols()
    for i in range(0, len(atoms), 3):
        symbols[i] = "Zr"
    atoms.set_chemical_symbols(symbols)
    is_zr = np.array(symbols) == "Zr"
    plain = Frame.from_ase(atoms)  # no LAMMPS types: sorted symbols, Cu 1 and Zr 2
    np.testing.assert_array_equal(plain.types, np.where(is_zr, 2, 1))
    assert plain.info["type_names"] == {1: "Cu", 2: "Zr"}
    by_map = Frame.from_ase(atoms, model={1: "Zr", 2: "Cu"})
    np.testing.assert_array_equal(by_map.types, np.where(is_zr, 1, 2))
    by_model = Frame.from_ase(atoms, model=CUZR)  # the shipped Cu-Zr model: Cu 1, Zr 2
    np.testing.assert_array_equal(by_model.types, np.where(is_zr, 2, 1))


def test_symbol_the_model_does_not_know_is_an_error():
    atoms = ase.build.bulk("Ni", "fcc", a=3.52, cubic=True).repeat(2)
    with pytest.raises(ValueError, match=r"\['Ni'\] are not atom types of the model"):
        Classifier.load(CUZR).classify(atoms)


def test_classify_accepts_ase_atoms():
    clf = Classifier.load(BOO)
    atoms = ase.build.bulk("Cu", "fcc", a=3.615, cubic=True).repeat(4)
    atoms.rattle(0.05, seed=4)
    direct = clf.classify(atoms)
    via_frame = clf.classify(Frame.from_ase(atoms))
    np.testing.assert_array_equal(direct.labels, via_frame.labels)
    np.testing.assert_array_equal(direct.probabilities, via_frame.probabilities)
    assert direct.fractions()["fcc"] > 0.95
    bcc = ase.build.bulk("Fe", "bcc", a=2.87, cubic=True).repeat(5)
    assert clf.classify(bcc).fractions()["bcc"] > 0.95


def test_extended_xyz_through_ase(tmp_path):
    fcc = ase.build.bulk("Cu", "fcc", a=3.615, cubic=True).repeat(4)
    bcc = ase.build.bulk("Fe", "bcc", a=2.87, cubic=True).repeat(5)
    path = tmp_path / "two.extxyz"
    ase.io.write(path, [fcc, bcc], format="extxyz")
    frames = list(iter_frames(path))
    assert [len(f) for f in frames] == [len(fcc), len(bcc)]
    np.testing.assert_allclose(frames[1].cell, bcc.cell.array)
    out = tmp_path / "labelled.dump"
    assert main(["classify", str(path), "--model", str(BOO), "-o", str(out)]) == 0
    first, second = read_lammps_dump(out, index=0), read_lammps_dump(out, index=1)
    assert (first.step, second.step) == (0, 1)
    assert (first.info["columns"]["StructureType"] == "fcc").mean() > 0.95
    assert (second.info["columns"]["StructureType"] == "bcc").mean() > 0.95


def test_per_atom_arrays_become_columns_and_train_a_model(tmp_path):
    images = []
    for k in range(4):
        for element, structure, a, n in (("Cu", "fcc", 3.615, 3), ("Fe", "bcc", 2.87, 4)):
            atoms = ase.build.bulk(element, structure, a=a, cubic=True).repeat(n)
            atoms.rattle(0.08, seed=k)
            atoms.arrays["structure"] = np.full(len(atoms), structure)
            images.append(atoms)
    path = tmp_path / "labelled.extxyz"
    ase.io.write(path, images, format="extxyz")
    first = next(iter_frames(path))
    np.testing.assert_array_equal(first.info["columns"]["structure"], "fcc")
    out = tmp_path / "out.dump"
    assert main(["classify", str(path), "--model", str(BOO), "-o", str(out)]) == 0
    kept = read_lammps_dump(out, index=1).info["columns"]
    np.testing.assert_array_equal(kept["structure"], "bcc")  # the input's arrays are kept
    assert main(["train", "material", "--labelled", str(path), "--label-column", "structure",
                 "--descriptor", "boo", "--epochs", "5", "--missing", "0", "--quiet",
                 "--out", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "m.h5")]) == 0
    assert Classifier.load(tmp_path / "m.onnx").classes == ["bcc", "fcc"]


def test_a_file_neither_dump_nor_ase_is_bad_input(tmp_path, capsys):
    path = tmp_path / "notes.dat"
    path.write_text("this is not an atomic structure\n")
    assert main(["classify", str(path), "--model", str(BOO)]) == 2
    assert "neither a LAMMPS text dump nor a format ASE reads" in capsys.readouterr().err


def test_lammps_data_read_by_ase_keeps_lammps_types(tmp_path):
    frame = triclinic_cuzr()
    frame.info.pop("type_names")
    path = tmp_path / "cuzr.data"
    from insitu.testing import write_data

    write_data(path, frame)
    atoms = ase.io.read(path, format="lammps-data", atom_style="atomic")
    back = frame_from_ase(atoms)  # ASE's 'type' and 'id' arrays are used
    order = np.argsort(back.ids)
    np.testing.assert_array_equal(back.types[order], frame.types[np.argsort(frame.ids)])
