"""MC-dropout uncertainty in situ (real LAMMPS, real mpirun): labels and mutual information
do not depend on the decomposition, and the thermo variables, per-atom values, HDF5 log
and the offline classifier agree."""

from __future__ import annotations

import re

import numpy as np
import pytest
from lammps_helpers import eam_ni_preamble, run_lammps

from insitu.io.lammps_dump import iter_lammps_dump
from insitu.io.phase_log import read_log
from insitu.model import Classifier
from insitu.resources import model_path
from insitu.testing import NI_LATTICE, lattice, remove_fraction, thermal, write_data

SCRIPT = eam_ni_preamble(1200, 7, "nvt temp 900 900 0.1") + """
comm_modify cutoff 8.6
fix nm_atoms all property/atom i_nm_class d_nm_conf d_nm_mi
python insitu_attach input 5 SELF nm crystal-nm every=5 {passes} format pssss &
    here "from insitu.coupling import insitu_attach"
python insitu_attach invoke
fix nm all python/invoke 5 end_of_step insitu_nm
dump d all custom 5 labels.dump id type x y z i_nm_class d_nm_conf d_nm_mi
dump_modify d sort id format float %.17g
thermo 5
thermo_style custom step temp v_nm_fcc v_nm_unknown v_nm_conf v_nm_mi v_nm_uncertain v_nm_novel
run 10
"""


def thermo_rows(text: str) -> np.ndarray:
    rows = re.findall(r"^\s+(\d+(?:\s+-?[\d.eE+-]+){7})\s*$", text, re.M)
    return np.array([[float(v) for v in r.split()] for r in rows])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Thermal fcc Ni with 15 % vacancies (a model trained on Al, Fe, Zr, Si: varied MI),
    ids fixed by a data file, analysed with the model's default T on 1 and 2 ranks, and
    with mc_passes=1 on 1 rank."""
    out = {}
    for key, nprocs, passes in (("np1", 1, "log=log.h5"), ("np2", 2, "log=log.h5"),
                                ("det", 1, "mc_passes=1")):
        d = tmp_path_factory.mktemp(key)
        frame = remove_fraction(thermal(lattice("fcc", NI_LATTICE, 6), 0.08, seed=3), 0.15, 1)
        data = write_data(d / "ni.data", frame)
        proc = run_lammps(SCRIPT.format(data=data, passes=passes), d, nprocs=nprocs)
        out[key] = (d, proc)
    return out


def per_atom(d):
    return {f.step: f for f in iter_lammps_dump(d / "labels.dump")}


def test_labels_and_mi_identical_on_1_and_2_ranks(runs):
    one, two = per_atom(runs["np1"][0]), per_atom(runs["np2"][0])
    assert sorted(one) == [0, 5, 10]
    for step in (5, 10):
        a, b = one[step].info["columns"], two[step].info["columns"]
        np.testing.assert_array_equal(one[step].ids, two[step].ids)
        np.testing.assert_array_equal(a["i_nm_class"], b["i_nm_class"])
        mi = a["d_nm_mi"]
        assert mi.max() > 10 * np.median(mi) > 0, "MI should vary from atom to atom"
        np.testing.assert_allclose(b["d_nm_mi"], mi, rtol=0, atol=1e-6)
        assert np.abs(b["d_nm_mi"] - mi).max() <= 1e-6
    # not a constant: the masks change with the step
    assert not np.allclose(one[5].info["columns"]["d_nm_mi"], one[10].info["columns"]["d_nm_mi"])


def test_thermo_log_dump_and_offline_agree(runs):
    d, _ = runs["np2"]
    clf = Classifier.load(model_path("crystal-nm"))
    assert clf.mc_passes > 1 and clf.mi_threshold > 0
    # LAMMPS's own log, written by rank 0 alone (stdout of mpirun may interleave the ranks)
    rows = thermo_rows((d / "log.lammps").read_text())
    rows = rows[rows[:, 0] > 0]
    log = read_log(d / "log.h5")
    frames = per_atom(d)
    np.testing.assert_array_equal(log.step, [5, 10])
    for i, step in enumerate(log.step):
        frame = frames[int(step)]
        mi = frame.info["columns"]["d_nm_mi"]
        uncertain = float(np.mean(mi > clf.mi_threshold))
        np.testing.assert_allclose(log.mean_mi[i], mi.mean(), rtol=1e-6)
        np.testing.assert_allclose(log.uncertain_fraction[i], uncertain, atol=1e-12)
        np.testing.assert_allclose(rows[i, 5:7], [mi.mean(), uncertain], rtol=1e-4, atol=1e-7)
        # offline, the same positions, ids and step give the same MI and labels
        offline = clf.classify(frame, step=int(step))
        np.testing.assert_allclose(offline.mutual_information, mi, atol=1e-5)
        np.testing.assert_array_equal(offline.label_index, frame.info["columns"]["i_nm_class"])
        # the fraction above the novelty threshold: log, thermo and offline agree
        assert clf.novelty_threshold is not None
        np.testing.assert_allclose([log.novel_fraction[i], rows[i, 7]],
                                   offline.novel.mean(), atol=1e-7)
        # unknown = below the confidence threshold or above the MI threshold
        lab = frame.info["columns"]["i_nm_class"]
        assert np.all(lab[mi > clf.mi_threshold] == -1)


def test_screened_fraction_logged_per_call(runs):
    """The share of the atoms crystal-nm's screening network settled: the same on 1 and 2
    ranks, and what the offline classifier's screen settles on the same frames."""
    logs = [read_log(runs[key][0] / "log.h5") for key in ("np1", "np2")]
    np.testing.assert_array_equal(logs[0].screened_fraction, logs[1].screened_fraction)
    clf = Classifier.load(model_path("crystal-nm"))
    frames = per_atom(runs["np2"][0])
    for i, step in enumerate(logs[1].step):
        before = clf.screen_counts.copy()
        clf.classify(frames[int(step)], step=int(step))
        settled, seen = clf.screen_counts - before
        assert seen == len(frames[int(step)]) and 0 < settled < seen, "some atoms each way"
        assert logs[1].screened_fraction[i] == pytest.approx(settled / seen, abs=1e-12)


def test_one_pass_is_the_deterministic_model(runs):
    d, proc = runs["det"]
    clf = Classifier.load(model_path("crystal-nm"), mc_passes=1)
    rows = thermo_rows(proc.stdout)
    assert np.all(rows[rows[:, 0] > 0, 5:7] == 0.0)  # no MC dropout: v_nm_mi = 0
    for step, frame in per_atom(d).items():
        if step == 0:
            continue
        offline = clf.classify(frame)
        np.testing.assert_array_equal(frame.info["columns"]["d_nm_mi"], 0.0)
        np.testing.assert_array_equal(offline.label_index, frame.info["columns"]["i_nm_class"])


BOO_SCRIPT = eam_ni_preamble(1200, 7, "nvt temp 900 900 0.1") + """
comm_modify cutoff 7.0
fix boo_atoms all property/atom i_boo_class d_boo_mi
python insitu_attach input 4 SELF boo crystal-boo every=5 format psss &
    here "from insitu.coupling import insitu_attach"
python insitu_attach invoke
fix boo all python/invoke 5 end_of_step insitu_boo
dump d all custom 5 labels.dump id type x y z i_boo_class d_boo_mi
dump_modify d sort id format float %.17g
run 10
"""


@pytest.fixture(scope="module")
def boo_runs(tmp_path_factory):
    """crystal-boo, whose 20 MC passes run in numba (insitu.model.mc_head), on 1 and 2
    ranks: the same Ni as above with 30 % vacancies (hot and damaged: varied MI)."""
    out = {}
    for nprocs in (1, 2):
        d = tmp_path_factory.mktemp(f"boo{nprocs}")
        frame = remove_fraction(thermal(lattice("fcc", NI_LATTICE, 6), 0.15, seed=3), 0.3, 1)
        run_lammps(BOO_SCRIPT.format(data=write_data(d / "ni.data", frame)), d, nprocs=nprocs)
        out[nprocs] = per_atom(d)
    return out


def test_numba_head_in_situ_matches_ranks_and_offline(boo_runs):
    clf = Classifier.load(model_path("crystal-boo"))
    assert clf.head is not None, "crystal-boo's passes should run in numba"
    graph = Classifier.load(model_path("crystal-boo"))
    graph.head = None  # the onnxruntime path, as reference
    one, two = boo_runs[1], boo_runs[2]
    for step in (5, 10):
        a, b = one[step].info["columns"], two[step].info["columns"]
        np.testing.assert_array_equal(a["i_boo_class"], b["i_boo_class"])
        np.testing.assert_allclose(b["d_boo_mi"], a["d_boo_mi"], rtol=0, atol=1e-6)
        assert a["d_boo_mi"].max() > 1e-3, "MI should not vanish everywhere"
        for model in (clf, graph):
            offline = model.classify(one[step], step=step)
            np.testing.assert_allclose(offline.mutual_information, a["d_boo_mi"], atol=1e-5)
            np.testing.assert_array_equal(offline.label_index, a["i_boo_class"])
