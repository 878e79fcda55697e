"""Bad input offline: malformed files and models end in one clear error, environments the
descriptor cannot describe come out ``unknown`` (issue: no silent wrong answers)."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import onnx
import pytest

import insitu
from insitu.frame import Frame
from insitu.io.lammps_data import read_lammps_data
from insitu.io.lammps_dump import iter_lammps_dump, read_lammps_dump, write_lammps_dump
from insitu.model import Classifier, ModelError
from insitu.resources import model_path
from insitu.testing import lattice, thermal

NM = model_path("crystal-nm")
BOO = model_path("crystal-boo")


def dump_text(frame: Frame, **columns) -> str:
    import io

    fh = io.StringIO()
    write_lammps_dump(fh, frame, columns)
    return fh.getvalue()


@pytest.fixture
def crystal() -> Frame:
    return thermal(lattice("fcc", 3.52, 4), 0.05, seed=1)


# -- case 10: reading what users have ----------------------------------------------------
def test_truncated_dump_is_an_error(tmp_path, crystal):
    lines = dump_text(crystal).splitlines(keepends=True)
    path = tmp_path / "cut.dump"
    path.write_text("".join(lines[:9 + 100]))  # header + 100 of 256 atoms, cut at a line end
    with pytest.raises(ValueError, match="declares 256 atoms but the file holds only 100"):
        read_lammps_dump(path)


@pytest.mark.parametrize("bad,match", [("1 1 0.0 0.0\n", "atom line"),
                                       ("x 1 0.0 0.0 0.0\n", "non-numeric")])
def test_malformed_atom_line_is_an_error(tmp_path, crystal, bad, match):
    lines = dump_text(crystal).splitlines(keepends=True)
    lines[12] = bad
    path = tmp_path / "bad.dump"
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=match):
        read_lammps_dump(path)


def test_element_column_dump(tmp_path, crystal):
    text = dump_text(crystal).replace("id type x y z", "id element x y z")
    body = text.splitlines()
    for i in range(9, len(body)):
        w = body[i].split()
        w[1] = "Zr" if int(w[0]) % 3 == 0 else "Cu"
        body[i] = " ".join(w)
    path = tmp_path / "element.dump"
    path.write_text("\n".join(body) + "\n")
    frame = read_lammps_dump(path)
    assert frame.info["type_names"] == {1: "Cu", 2: "Zr"}
    np.testing.assert_array_equal(frame.types, np.where(frame.ids % 3 == 0, 2, 1))


def test_gzipped_dump_reads_like_the_plain_one(tmp_path, crystal):
    plain = tmp_path / "a.dump"
    plain.write_text(dump_text(crystal) * 2)
    with open(plain, "rb") as src, gzip.open(tmp_path / "a.dump.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    a = list(iter_lammps_dump(plain))
    b = list(iter_lammps_dump(tmp_path / "a.dump.gz"))
    assert len(a) == len(b) == 2
    np.testing.assert_array_equal(a[1].positions, b[1].positions)


def test_index_reads_only_up_to_that_frame(tmp_path, crystal):
    good = dump_text(crystal)
    path = tmp_path / "streamed.dump"
    path.write_text(good + good + "ITEM: TIMESTEP\nbroken\n")  # frame 2 is unreadable
    assert len(read_lammps_dump(path, index=1)) == len(crystal)
    with pytest.raises(ValueError):
        read_lammps_dump(path, index=-1)


def test_data_file_atom_style_full_types(tmp_path):
    path = tmp_path / "full.data"
    path.write_text("full\n\n3 atoms\n2 atom types\n\n0 10 xlo xhi\n0 10 ylo yhi\n"
                    "0 10 zlo zhi\n\nAtoms # full\n\n1 7 2 0.5 1 1 1\n2 7 1 -0.5 2 2 2\n"
                    "3 9 2 0.0 3 3 3\n")
    frame = read_lammps_data(path)
    np.testing.assert_array_equal(frame.types, [2, 1, 2])  # not the molecule ids 7, 7, 9
    np.testing.assert_allclose(frame.positions[:, 0], [1, 2, 3])


def test_classify_output_keeps_origin_and_columns(tmp_path, crystal):
    from insitu.cli import main

    shifted = Frame(crystal.positions, crystal.cell, crystal.pbc, crystal.types, crystal.ids)
    shifted.info["origin"] = np.array([-7.0, 3.0, 11.0])
    src = tmp_path / "in.dump"
    src.write_text(dump_text(shifted, c_pe=np.linspace(-4.5, -4.4, len(crystal))))
    out = tmp_path / "out.dump"
    assert main(["classify", str(src), "--model", str(BOO), "-o", str(out)]) == 0
    got, orig = read_lammps_dump(out), read_lammps_dump(src)
    np.testing.assert_allclose(got.info["origin"], [-7.0, 3.0, 11.0])
    np.testing.assert_allclose(got.positions, orig.positions, atol=1e-5)
    np.testing.assert_allclose(got.info["columns"]["c_pe"], orig.info["columns"]["c_pe"],
                               rtol=1e-5)
    assert {"label", "confidence"} <= set(got.info["columns"])


# -- case 11: model files ----------------------------------------------------------------
def model_with(tmp_path, name, **metadata) -> str:
    model = onnx.load(str(NM))
    props = {p.key: p.value for p in model.metadata_props}
    props.update({f"insitu.{k}": v for k, v in metadata.items()})
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    path = tmp_path / name
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("key,value,match", [
    ("classes", "[" * 100000 + "]" * 100000, "nested too deeply"),
    ("confidence_threshold", '"high"', "confidence_threshold must be a number"),
    ("descriptor", '{"kind": "neighbors_map", "cutoff": 1000.0}', "cutoff must be in"),
    ("descriptor", '{"kind": "neighbors_map", "cutoff": "far"}', "cutoff"),
    ("atom_types", '{"Ni": 1}', "atom_types must map"),
    ("length_unit", '"sigma"', "length_unit"),
    ("classes", '["fcc", "fcc", "bcc", "hcp", "liquid"]', "distinct"),
])
def test_bad_metadata_is_a_model_error_naming_the_file(tmp_path, key, value, match):
    path = model_with(tmp_path, "bad.onnx", **{key: value})
    with pytest.raises(ModelError, match=match) as info:
        Classifier.load(path)
    assert "bad.onnx" in str(info.value)


# -- cases 3 and 4: what the descriptor cannot describe -----------------------------------
@pytest.mark.parametrize("model", [NM, BOO], ids=["nm", "boo"])
def test_dilute_gas_is_unknown_offline(model):
    rng = np.random.default_rng(3)
    gas = Frame(rng.random((40, 3)) * 60.0, np.eye(3) * 60.0, [True] * 3, np.ones(40, int))
    res = Classifier.load(model).classify(gas)
    assert res.undescribed.all() and (res.label_index == -1).all()
    assert (res.confidence == 0).all() and (res.labels == "unknown").all()


@pytest.mark.parametrize("model", [NM, BOO], ids=["nm", "boo"])
def test_coincident_atoms_are_unknown_offline(model, crystal):
    pos = np.vstack([crystal.positions, crystal.positions[:1]])
    frame = Frame(pos, crystal.cell, crystal.pbc, np.ones(len(pos), int))
    res = Classifier.load(model).classify(frame)
    assert res.label_index[0] == -1 and res.label_index[-1] == -1
    assert np.isfinite(res.confidence).all() and np.isfinite(res.probabilities).all()
    far = np.linalg.norm(frame.positions - frame.positions[0], axis=1) > 7.0
    assert (res.labels[far & ~res.undescribed] == "fcc").mean() > 0.9


def test_zero_threshold_never_labels_an_undescribed_atom():
    rng = np.random.default_rng(4)
    gas = Frame(rng.random((10, 3)) * 60.0, np.eye(3) * 60.0, [True] * 3, np.ones(10, int))
    res = Classifier.load(NM).classify(gas, threshold=0.0)
    assert (res.label_index == -1).all()


def test_public_api_is_importable():
    assert insitu.Classifier is Classifier


# -- case 14: the log promise is open-append-close per row --------------------------------
def open_paths() -> set:
    import os

    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")))
        except OSError:
            pass
    return found


def test_log_is_closed_between_rows(tmp_path):
    import os

    from insitu.io.phase_log import PhaseLog, read_log

    path = tmp_path / "log.h5"
    log = PhaseLog(path, ["fcc", "liquid"], ["total"], attrs={"id": "nm"})
    for step in (10, 20, 30):
        assert os.path.realpath(path) not in open_paths()
        log.append(step, {"temperature": 300.0, "potential_energy": -4.4}, np.array([3, 1, 0]),
                   0.9, {"total": 0.01})
        assert os.path.realpath(path) not in open_paths()  # closed again after the row
    np.testing.assert_array_equal(read_log(path).step, [10, 20, 30])
