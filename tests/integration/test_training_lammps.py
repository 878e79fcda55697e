"""Training end to end with real LAMMPS: ramps (Fe bcc, Al fcc; 2 ps) -> HDF5 with CNA ->
fit CNN and MLP -> ONNX + model card -> Classifier."""

from __future__ import annotations

import json

import h5py
import numpy as np
import onnx  # noqa: E402,F401

from insitu.descriptors import NeighborsMap, Steinhardt  # noqa: E402
from insitu.io.lammps_dump import iter_lammps_dump  # noqa: E402
from insitu.model import Classifier  # noqa: E402
from insitu.testing import lattice, thermal  # noqa: E402
from insitu.training.datagen import generate_crystal_dataset  # noqa: E402
from insitu.training.train import fit_from_hdf5  # noqa: E402


def test_end_to_end_tiny_lammps_dataset(tmp_path):
    """LAMMPS ramps (Fe bcc, Al fcc; 2 ps) -> HDF5 -> fit CNN and MLP -> ONNX -> Classifier."""
    data = generate_crystal_dataset(
        tmp_path / "tiny.h5", materials=["Fe", "Al"], ramp_ps=2.0, include_liquid=False,
        missing_fractions=(0.0, 0.3),
        descriptors={"nm": NeighborsMap(cutoff=5.0, n_grid=16),
                     "boo": Steinhardt(ls=(4, 6, 8), n_neighbors=12, averaged=True)},
        progress=False)
    with h5py.File(data, "r") as h5:
        assert h5["nm"].shape[1:] == (1, 16, 16)
        assert set(np.unique(h5["split"][...])) == {0, 1}
        prov = json.loads(h5.attrs["provenance"])
        assert {m["potential"] for m in prov["materials"]} == {"Fe_mm.eam.fs", "Al_mm.eam.fs"}
        for key in ("temperature", "missing_fraction", "copy_seed", "cna", "group"):
            assert key in h5
    # a tiny dataset (two runs, two elements): the check is that training learns (chance
    # is 0.5), not a validation figure (those are the model cards')
    for key, min_acc, epochs in (("boo", 0.85, 10), ("nm", 0.75, 4)):
        out, rep = fit_from_hdf5(data, key, out=tmp_path / f"{key}.onnx", epochs=epochs,
                                 batch_size=64, progress=False, threads=1)
        # two classes present: chance is 0.5
        assert rep["val_accuracy"] > min_acc, rep["history"]
        card = (tmp_path / f"{key}.md").read_text()
        assert card.startswith(f"# {key}") and "## Validation" in card
        assert "insitu train fit --data" in card and "| Fe | bcc |" in card
        clf = Classifier.load(out)
        assert clf.metadata["training"]["n_train"] == rep["n_train"]
        res = clf.classify(thermal(lattice("bcc", 2.86, 4), 0.08), threshold=0.0)
        assert res.fractions()["bcc"] > 0.8, (key, res.fractions(), res.probabilities[:3])


def test_transition_runs_make_their_run_folder(tmp_path):
    """`insitu train data --protocol transition` on a fresh clone: the run folder does not
    exist yet (it failed with FileNotFoundError on the first run marker). Short Al runs."""
    from insitu.training.transition_runs import TRANSITION_MATERIALS, transition_runs

    workdir = tmp_path / "data" / "transition_lammps"
    runs = transition_runs([TRANSITION_MATERIALS["Al"]], workdir, roles=("train",),
                           heat_ps=0.5, quench_ps=0.5, snapshot_ps=0.1, workers=1)
    assert [r.kind for r in runs] == ["heat", "quench"]
    for run in runs:
        assert (workdir / f"{run.name}.done").exists()
        assert not (workdir / f"{run.name}.running").exists()
        frames = list(iter_lammps_dump(run.dump))
        assert len(frames) >= 5 and len(frames[0].positions) == 500
