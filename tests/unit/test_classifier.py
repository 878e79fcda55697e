"""Model runtime (no torch): shipped models, Classifier API, errors, CLI classify."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from insitu.frame import Frame, read_lammps_dump
from insitu.runtime import ClassificationResult, Classifier, ModelError

REPO = Path(__file__).resolve().parents[1]
MODELS = {"crystal-nm": REPO / "models" / "crystal-nm.onnx",
          "crystal-boo": REPO / "models" / "crystal-boo.onnx"}
CLASSES = ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"]


def lattice(kind: str, a: float, reps, noise: float = 0.0, seed: int = 0) -> Frame:
    """Perfect lattice (orthogonal cell) with Gaussian displacements."""
    reps = (reps,) * 3 if np.isscalar(reps) else tuple(reps)
    if kind == "hcp":
        c = a * np.sqrt(8 / 3)
        basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 5 / 6, 0.5], [0, 1 / 3, 0.5]])
        box = np.array([a, a * np.sqrt(3), c])
    else:
        basis = {"fcc": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
                 "bcc": [[0, 0, 0], [0.5, 0.5, 0.5]],
                 "cubic_diamond": [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
                                   [0.25, 0.25, 0.25], [0.75, 0.75, 0.25], [0.75, 0.25, 0.75],
                                   [0.25, 0.75, 0.75]]}[kind]
        basis = np.asarray(basis, float)
        box = np.array([a, a, a])
    cells = np.array([[i, j, k] for i in range(reps[0]) for j in range(reps[1])
                      for k in range(reps[2])], float)
    pos = ((cells[:, None, :] + basis[None]) * box).reshape(-1, 3)
    pos += np.random.default_rng(seed).normal(0.0, noise, pos.shape)
    return Frame(pos, np.diag(box * np.array(reps)), [True] * 3, np.ones(len(pos), int))


@pytest.fixture(scope="module", params=sorted(MODELS))
def shipped(request):
    path = MODELS[request.param]
    assert path.is_file(), f"shipped model missing: {path}"
    return Classifier.load(path)


def test_shipped_model_metadata(shipped):
    assert shipped.classes == CLASSES
    assert 0.0 < shipped.confidence_threshold < 1.0
    md = shipped.metadata
    assert md["format"] == 1 or md["format"] == "1"
    assert md["descriptor"]["kind"] in ("neighbors_map", "steinhardt")
    assert float(md["validation_accuracy"]) > 0.95
    assert md["training"]["n_train"] > 0 and md["training"]["epochs"] >= 1
    assert len(shipped.sha256) == 64
    card = shipped.path.with_suffix(".md")
    assert card.is_file() and "insitu train" in card.read_text()


@pytest.mark.parametrize("kind,a,reps,noise", [
    ("fcc", 4.05, 4, 0.06),          # Al, as trained
    ("fcc", 3.52, 4, 0.06),          # Ni: another fcc metal
    ("bcc", 2.855, 5, 0.06),         # Fe
    ("hcp", 3.23, (5, 3, 3), 0.06),  # Zr (ideal c/a)
    ("cubic_diamond", 5.431, 3, 0.05),  # Si
])
def test_shipped_models_label_thermal_crystals(shipped, kind, a, reps, noise):
    res = shipped.classify(lattice(kind, a, reps, noise))
    assert res.fractions()[kind] > 0.95, (shipped.path.name, res.fractions())


@pytest.fixture(scope="module")
def liquid_ni(tmp_path_factory):
    """256 atoms of liquid Ni (Ni_u3.eam, not a training material) from a short LAMMPS run."""
    from lammps_helpers import run_lammps

    work = tmp_path_factory.mktemp("liqni")
    run_lammps("""units metal
lattice fcc 3.52
region box block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 box
mass 1 58.69
pair_style eam
pair_coeff * * /usr/share/lammps/potentials/Ni_u3.eam
velocity all create 5000 7 mom yes rot yes dist gaussian
fix 1 all npt temp 3500 3500 0.1 iso 0 0 1.0
timestep 0.001
run 2500
unfix 1
fix 2 all npt temp 2200 2200 0.1 iso 0 0 1.0
run 1500
write_dump all custom liquid.dump id type x y z modify sort id
""", work, nprocs=1)
    return read_lammps_dump(work / "liquid.dump")


def test_shipped_models_label_liquid(shipped, liquid_ni):
    res = shipped.classify(liquid_ni)
    assert res.fractions()["liquid"] > 0.95, res.fractions()


def test_result_api_and_fractions(shipped):
    frame = lattice("fcc", 3.6, 3, 0.05)
    res = shipped.classify(frame)
    assert isinstance(res, ClassificationResult)
    n, k = len(frame), len(CLASSES)
    assert res.classes == CLASSES
    assert res.labels.shape == (n,) and res.label_index.shape == (n,)
    assert res.probabilities.shape == (n, k) and res.probabilities.dtype == np.float32
    np.testing.assert_allclose(res.confidence, res.probabilities.max(1))
    fr = res.fractions()
    assert set(fr) == set(CLASSES) | {"unknown"} and abs(sum(fr.values()) - 1) < 1e-9
    # a threshold above any probability -> everything unknown
    res1 = shipped.classify(frame, threshold=1.01)
    assert (res1.labels == "unknown").all() and (res1.label_index == -1).all()
    assert res1.fractions()["unknown"] == 1.0


def test_predict_proba_batching_is_invisible(shipped):
    frame = lattice("bcc", 2.9, 4, 0.08)
    feats = shipped.descriptor.compute(frame)
    small = Classifier.load(shipped.path, batch_size=7)
    np.testing.assert_allclose(small.predict_proba(feats), shipped.predict_proba(feats),
                               atol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        shipped.predict_proba(np.zeros((2, 3), np.float32))


def test_classify_equals_in_situ_code_path(shipped):
    """Classifier.classify (periodic frame) and the per-rank open-set pipeline used in situ
    (atoms + periodic images as ghosts) give the same labels."""
    from insitu.classify_cli import classify_frame

    frame = lattice("hcp", 3.2, (4, 3, 3), 0.1, seed=4)
    a = shipped.classify(frame)
    b = classify_frame(shipped, frame)
    np.testing.assert_array_equal(a.label_index, b.label_index)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)


def test_missing_and_corrupt_model_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        Classifier.load(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx file")
    with pytest.raises(ModelError, match="bad.onnx"):
        Classifier.load(bad)
    assert issubclass(ModelError, ValueError)
    # valid ONNX without insitu metadata
    import onnx
    proto = onnx.load(str(MODELS["crystal-boo"]))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(ModelError, match="metadata"):
        Classifier.load(plain)


def test_runtime_never_imports_torch():
    code = ("import sys, numpy as np\n"
            "from insitu.runtime import Classifier\n"
            "from insitu.frame import Frame\n"
            "import insitu.classify_cli\n"
            f"c = Classifier.load({str(MODELS['crystal-boo'])!r})\n"
            "pos = np.random.default_rng(0).random((200, 3)) * 12\n"
            "c.classify(Frame(pos, np.eye(3) * 12, [True] * 3, np.ones(200, int)))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_cli_classify_dump(tmp_path):
    frame = lattice("fcc", 3.52, 3, 0.05)
    dump = tmp_path / "in.dump"
    with open(dump, "w") as fh:
        for step in (0, 100):
            fh.write(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{len(frame)}\n"
                     "ITEM: BOX BOUNDS pp pp pp\n")
            for d in range(3):
                fh.write(f"0 {frame.cell[d, d]}\n")
            fh.write("ITEM: ATOMS id type x y z\n")
            for i, (x, y, z) in enumerate(frame.positions):
                fh.write(f"{i + 1} 1 {x} {y} {z}\n")
    out = tmp_path / "labels.dump"
    from insitu.classify_cli import main
    rc = main(["classify", str(dump), "--model", str(MODELS["crystal-boo"]), "--output",
               str(out), "--frames", "all"])
    assert rc == 0
    labelled = list(__import__("insitu.frame", fromlist=["x"]).iter_lammps_dump(out))
    assert len(labelled) == 2
    lab = labelled[-1].info["columns"]["label"]
    assert (lab == CLASSES.index("fcc")).mean() > 0.95
    assert "confidence" in labelled[-1].info["columns"]
    rc = main(["classify", str(dump), "--model", str(tmp_path / "missing.onnx")])
    assert rc == 2


def test_cli_classify_json(tmp_path, capsys):
    frame = lattice("bcc", 2.86, 3, 0.05)
    dump = tmp_path / "b.dump"
    lines = [f"ITEM: TIMESTEP\n5\nITEM: NUMBER OF ATOMS\n{len(frame)}\n",
             "ITEM: BOX BOUNDS pp pp pp\n"] + [f"0 {frame.cell[d, d]}\n" for d in range(3)]
    lines.append("ITEM: ATOMS id type x y z\n")
    lines += [f"{i + 1} 1 {x} {y} {z}\n" for i, (x, y, z) in enumerate(frame.positions)]
    dump.write_text("".join(lines))
    from insitu.classify_cli import main
    assert main(["classify", str(dump), "--model", str(MODELS["crystal-boo"]), "--json",
                 "--frames", "last"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["step"] == 5 and rec["fractions"]["bcc"] > 0.95
