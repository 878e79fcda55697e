"""Model runtime (no torch): shipped models, Classifier API, errors, CLI classify."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from insitu.model import ClassificationResult, Classifier, ModelError
from insitu.resources import model_path
from insitu.testing import image_points, lattice, thermal, write_dump

SHIPPED = ["crystal-boo", "crystal-nm"]
CLASSES = ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"]


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request):
    path = model_path(request.param)
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
    res = shipped.classify(thermal(lattice(kind, a, reps), noise))
    assert res.fractions()[kind] > 0.95, (shipped.path.name, res.fractions())


def test_result_api_and_fractions(shipped):
    frame = thermal(lattice("fcc", 3.6, 3), 0.05)
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
    frame = thermal(lattice("bcc", 2.9, 4), 0.08)
    feats = shipped.descriptor.compute(frame)
    small = Classifier.load(shipped.path, batch_size=7)
    np.testing.assert_allclose(small.predict_proba(feats), shipped.predict_proba(feats),
                               atol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        shipped.predict_proba(np.zeros((2, 3), np.float32))


def test_open_point_set_equals_periodic_frame(shipped):
    """A rank's view (atoms + explicit image atoms as ghosts) gets the labels of the
    periodic frame."""
    frame = thermal(lattice("hcp", 3.2, (4, 3, 3)), 0.1, seed=4)
    a = shipped.classify(frame)
    b = shipped.classify(image_points(frame))
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
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(model_path("crystal-boo")))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(ModelError, match="metadata"):
        Classifier.load(plain)


def test_runtime_never_imports_torch(tmp_path):
    code = ("import sys, numpy as np\n"
            "from insitu.model import Classifier\n"
            "from insitu.frame import Frame\n"
            "import insitu.cli.classify\n"
            f"c = Classifier.load({str(model_path('crystal-boo'))!r})\n"
            "pos = np.random.default_rng(0).random((200, 3)) * 12\n"
            "c.classify(Frame(pos, np.eye(3) * 12, [True] * 3, np.ones(200, int)))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_cli_classify_dump(tmp_path):
    from insitu.cli import main
    from insitu.io.lammps_dump import iter_lammps_dump

    frame = thermal(lattice("fcc", 3.52, 3), 0.05)
    dump = write_dump(tmp_path / "in.dump", [frame, frame])
    out = tmp_path / "labels.dump"
    rc = main(["classify", str(dump), "--model", str(model_path("crystal-boo")), "--output",
               str(out), "--frames", "all"])
    assert rc == 0
    labelled = list(iter_lammps_dump(out))
    assert len(labelled) == 2
    lab = labelled[-1].info["columns"]["label"]
    assert (lab == CLASSES.index("fcc")).mean() > 0.95
    assert "confidence" in labelled[-1].info["columns"]
    rc = main(["classify", str(dump), "--model", str(tmp_path / "missing.onnx")])
    assert rc == 2


def test_cli_classify_json(tmp_path, capsys):
    from insitu.cli import main

    frame = thermal(lattice("bcc", 2.86, 3), 0.05)
    frame.step = 5
    dump = write_dump(tmp_path / "b.dump", frame)
    assert main(["classify", str(dump), "--model", str(model_path("crystal-boo")), "--json",
                 "--frames", "last"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["step"] == 5 and rec["fractions"]["bcc"] > 0.95


def test_cli_classify_finds_shipped_model_by_name(tmp_path, capsys):
    """``--model crystal-nm``: a shipped model by name, wherever the command runs."""
    from insitu.cli import main

    dump = write_dump(tmp_path / "n.dump", thermal(lattice("fcc", 3.52, 3), 0.05))
    assert main(["classify", str(dump), "--model", "crystal-nm", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["fractions"]["fcc"] > 0.95
