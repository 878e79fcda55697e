"""OVITO interoperability (issue 14), with the ``ovito`` package from PyPI: the dump of
``insitu classify -o`` opens in OVITO with a named Structure Type property, the
``insitu.ovito`` modifiers give Classifier.classify's labels."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from ovito.io import import_file

from insitu import Frame
from insitu.cli import main
from insitu.io.lammps_dump import read_lammps_dump
from insitu.model import Classifier
from insitu.ovito import ClassColumnToStructureType, InsituClassifier, frame_from_data
from insitu.resources import model_path
from insitu.testing import lattice, remove_fraction, thermal, thermal_ni, write_dump

BOO = model_path("crystal-boo")


def structure_names(data) -> np.ndarray:
    """Per particle, the name of its Structure Type."""
    prop = data.particles["Structure Type"]
    names = {t.id: t.name for t in prop.types}
    return np.array([names[int(v)] for v in np.asarray(prop)])


def sheared(frame: Frame, xy=2.0, xz=-1.0, yz=0.5) -> Frame:
    """The frame in a triclinic (LAMMPS-style, lower-triangular) box."""
    shear = np.eye(3)
    a, b, c = np.diag(frame.cell)
    shear[1, 0], shear[2, 0], shear[2, 1] = xy / b, xz / c, yz / c
    return Frame(frame.positions @ shear, frame.cell @ shear, frame.pbc, frame.types,
                 frame.ids)


def test_classify_output_has_named_structure_types_in_ovito(tmp_path):
    fcc = thermal(lattice("fcc", 3.615, 4), 0.05, seed=1)
    bcc = thermal(lattice("bcc", 2.87, 5), 0.05, seed=2)
    bcc.step = 100
    src = write_dump(tmp_path / "in.dump", [fcc, bcc])
    out = tmp_path / "labelled.dump"
    assert main(["classify", str(src), "--model", str(BOO), "-o", str(out)]) == 0
    classes = Classifier.load(BOO).classes
    pipeline = import_file(str(out))
    assert pipeline.num_frames == 2
    for frame_index, expected in ((0, "fcc"), (1, "bcc")):
        data = pipeline.compute(frame_index)
        prop = data.particles["Structure Type"]
        type_names = {t.name for t in prop.types}
        assert type_names <= set(classes) | {"unknown"}
        assert expected in type_names
        ours = read_lammps_dump(out, index=frame_index)
        order = np.argsort(np.asarray(data.particles.identifiers))
        np.testing.assert_array_equal(structure_names(data)[order],
                                      ours.info["columns"]["StructureType"])
        assert (structure_names(data) == expected).mean() > 0.95


def test_classify_output_of_a_gzipped_element_dump_in_ovito(tmp_path):
    frame = thermal(lattice("fcc", 3.615, 4), 0.05, seed=3)
    text = write_dump(tmp_path / "plain.dump", frame).read_text()
    text = text.replace("id type x y z", "id element x y z")
    lines = text.splitlines()
    for i in range(9, len(lines)):
        words = lines[i].split()
        words[1] = "Cu"
        lines[i] = " ".join(words)
    (tmp_path / "cu.dump").write_text("\n".join(lines) + "\n")
    with open(tmp_path / "cu.dump", "rb") as src, gzip.open(tmp_path / "cu.dump.gz", "wb") as gz:
        shutil.copyfileobj(src, gz)
    out = tmp_path / "cu_labelled.dump"
    assert main(["classify", str(tmp_path / "cu.dump.gz"), "--model", str(BOO), "-o",
                 str(out)]) == 0
    data = import_file(str(out)).compute()
    assert {t.name for t in data.particles.particle_types.types} == {"Cu"}
    assert (structure_names(data) == "fcc").mean() > 0.95


@pytest.mark.parametrize("fixture", ["boo_model", "nm_model"])
@pytest.mark.parametrize("triclinic", [False, True])
def test_modifier_gives_the_labels_of_classifier_classify(tmp_path, request, fixture,
                                                          triclinic):
    model = request.getfixturevalue(fixture)  # random weights: labels vary from atom to atom
    frame = remove_fraction(thermal_ni(1200.0, n_cells=5), 0.1, seed=5)
    if triclinic:
        frame = sheared(frame)
    frame.info["origin"] = np.array([-3.0, 4.0, 7.5])
    path = write_dump(tmp_path / "ni.dump", frame)
    pipeline = import_file(str(path))
    pipeline.modifiers.append(InsituClassifier(model=str(model)))
    data = pipeline.compute()
    clf = Classifier.load(model)
    expected = clf.classify(read_lammps_dump(path))
    assert len(set(expected.labels.tolist())) >= 2  # the comparison has teeth
    prop = data.particles["Structure Type"]
    assert [t.name for t in prop.types] == ["unknown", *clf.classes]
    order = np.argsort(np.asarray(data.particles.identifiers))
    np.testing.assert_array_equal(structure_names(data)[order], expected.labels)
    np.testing.assert_allclose(np.asarray(data.particles["Confidence"])[order],
                               expected.confidence, rtol=1e-6)
    counts = expected.counts()
    for name in clf.classes:
        assert data.attributes[f"InsituClassifier.counts.{name}"] == counts[name]
    assert data.particles["Color"] is not None


def test_frame_from_data_is_the_dump_readers_frame(tmp_path):
    frame = sheared(thermal(lattice("fcc", 3.6, 3), 0.05, seed=6))
    frame.info["origin"] = np.array([1.0, -2.0, 0.5])
    path = write_dump(tmp_path / "tri.dump", frame)
    ovito_frame = frame_from_data(import_file(str(path)).compute())
    ours = read_lammps_dump(path)
    order = np.argsort(ovito_frame.ids)
    np.testing.assert_allclose(ovito_frame.cell, ours.cell, atol=1e-9)
    np.testing.assert_allclose(ovito_frame.positions[order], ours.positions, atol=1e-9)
    np.testing.assert_allclose(ovito_frame.info["origin"], ours.info["origin"])
    np.testing.assert_array_equal(ovito_frame.pbc, ours.pbc)


def test_in_situ_class_column_becomes_named_structure_type(tmp_path):
    frame = thermal(lattice("fcc", 3.52, 3), 0.05, seed=7)
    classes = Classifier.load(BOO).classes
    index = np.arange(len(frame)) % (len(classes) + 1) - 1  # -1 (unknown) and every class
    conf = np.linspace(0.2, 1.0, len(frame))
    path = write_dump(tmp_path / "labels.dump", frame, {"i_nm_class": index, "d_nm_conf": conf})
    pipeline = import_file(str(path))
    pipeline.modifiers.append(ClassColumnToStructureType(analysis_id="nm", model=str(BOO)))
    data = pipeline.compute()
    order = np.argsort(np.asarray(data.particles.identifiers))
    names = np.array([*classes, "unknown"])[np.where(index < 0, len(classes), index)]
    np.testing.assert_array_equal(structure_names(data)[order], names)
    np.testing.assert_allclose(np.asarray(data.particles["Confidence"])[order], conf,
                               rtol=1e-5)


def test_modifier_sets_mutual_information_under_mc_dropout(tmp_path, boo_model):
    frame = thermal_ni(1500.0, n_cells=4)
    path = write_dump(tmp_path / "ni.dump", frame)
    pipeline = import_file(str(path))
    pipeline.modifiers.append(InsituClassifier(model=str(boo_model), mc_passes=8))
    data = pipeline.compute()
    expected = Classifier.load(boo_model, mc_passes=8).classify(read_lammps_dump(path))
    order = np.argsort(np.asarray(data.particles.identifiers))
    mi = np.asarray(data.particles["Mutual Information"])[order]
    assert mi.max() > 0
    np.testing.assert_allclose(mi, expected.mutual_information, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(structure_names(data)[order], expected.labels)
