"""Neighbour consensus (insitu.model.consensus) against a plain reference: SciPy's periodic
k-d tree for the neighbours, a Python loop for the mean."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.spatial import cKDTree

from insitu.locality import Points
from insitu.model import Classifier, ModelError
from insitu.model.consensus import Consensus, consensus_mean, plan_consensus
from insitu.testing import lattice, thermal
from insitu.training.export import update_metadata


def reference_members(frame, k, r):
    """Per atom: itself and its k nearest neighbours within r (periodic, orthogonal box)."""
    box = np.diag(frame.cell)
    tree = cKDTree(frame.positions % box, boxsize=box)
    d, j = tree.query(frame.positions % box, k=k + 1)
    return [list(jj[dd <= r]) for dd, jj in zip(d, j)]


def test_consensus_mean_matches_a_loop():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=30).astype(np.float32)
    described = rng.random(30) > 0.3
    described[5] = False
    lists = [[i] + list(rng.choice(30, size=rng.integers(0, 6), replace=False))
             for i in range(10)]
    lists[5] = [5]  # undescribed and alone: keeps its own row
    offsets = np.cumsum([0] + [len(m) for m in lists])
    members = np.concatenate(lists).astype(np.int64)
    got, count = consensus_mean(p, described, offsets, members)
    for i, m in enumerate(lists):
        ok = [j for j in m if described[j]]
        want = p[ok].mean(axis=0) if ok else p[i]
        np.testing.assert_allclose(got[i], want, atol=1e-6)
        assert count[i] == len(ok)


def test_plan_on_a_periodic_frame_names_the_reference_neighbours():
    frame = thermal(lattice("fcc", 3.52, 4), 0.12, seed=2)
    rule = Consensus(n_neighbors=12, cutoff_angstrom=3.0)
    points = frame.to_points(rule.cutoff_angstrom + 1.0)
    plan = plan_consensus(points, rule)
    # every member is an image of a frame atom: no extra centre to classify
    assert plan.points.n_centers == len(frame)
    ref = reference_members(frame, 12, 3.0)
    for i in range(len(frame)):
        got = plan.members[plan.offsets[i]:plan.offsets[i + 1]]
        assert got[0] == i
        assert sorted(got) == sorted(ref[i])


def test_plan_classifies_each_foreign_ghost_once():
    # two centres; a foreign atom (id 9) seen through two images, one of them within reach
    pos = np.array([[0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [0, 2.5, 0], [8, 8, 8], [-1.5, 0, 0]])
    ids = np.array([1, 2, 9, 9, 7, 1])  # the last is an image of centre 1
    points = Points(pos, np.ones(6), ids, 2)
    plan = plan_consensus(points, Consensus(n_neighbors=4, cutoff_angstrom=3.0))
    assert plan.points.n_centers == 3 and plan.points.ids[2] == 9
    members_of_1 = plan.members[plan.offsets[0]:plan.offsets[1]]
    members_of_2 = plan.members[plan.offsets[1]:plan.offsets[2]]
    # centre 1: itself, 2 (1 A), its own image (1.5 A: row 0 again), 9 (2 A), 9 (2.5 A)
    assert list(members_of_1) == [0, 1, 0, 2, 2]
    # centre 2: itself, 1 and 9 (both 1 A: by id), 1's image (2.5 A), 9's image (2.69 A)
    assert list(members_of_2) == [1, 0, 2, 0, 2]
    assert set(plan.points.ids[plan.points.n_centers:]) == {9, 7, 1}


@pytest.fixture(scope="module")
def consensus_model(tmp_path_factory, boo_model):
    path = tmp_path_factory.mktemp("consensus") / "boo-consensus.onnx"
    shutil.copy(boo_model, path)
    update_metadata(path, {"consensus": Consensus(8, 3.0).to_metadata()})
    return path


def test_classifier_labels_from_the_mean_of_the_neighbourhood(consensus_model, boo_model):
    frame = thermal(lattice("fcc", 3.52, 4), 0.2, seed=5)
    with_rule = Classifier.load(consensus_model)
    plain = Classifier.load(boo_model)
    assert with_rule.required_cutoff == pytest.approx(plain.descriptor.required_cutoff + 3.0)
    got, own = with_rule.classify(frame), plain.classify(frame)
    np.testing.assert_allclose(got.own_probabilities, own.probabilities, atol=1e-6)
    ref = reference_members(frame, 8, 3.0)
    want = np.array([own.probabilities[m].mean(axis=0) for m in ref])
    np.testing.assert_allclose(got.probabilities, want, atol=1e-5)
    assert not np.array_equal(got.label_index, own.label_index)  # the rule did something
    np.testing.assert_array_equal(got.mutual_information, own.mutual_information)


def test_bad_consensus_metadata_is_refused(tmp_path, boo_model):
    path = tmp_path / "bad.onnx"
    shutil.copy(boo_model, path)
    update_metadata(path, {"consensus": {"n_neighbors": 0, "cutoff_angstrom": 3.0}})
    with pytest.raises(ModelError, match="consensus"):
        Classifier.load(path)
    update_metadata(path, {"consensus": None})  # removed: per-atom labels again
    assert Classifier.load(path).consensus is None


def test_undescribed_atoms_stay_unknown(consensus_model):
    from insitu.frame import Frame

    crystal = lattice("fcc", 3.52, 4)
    # a gas atom far from the crystal, and an atom 2.9 A out from the crystal's corner
    # along the cube diagonal: too few neighbours to describe (the model needs 4 within
    # 4 A; it has one), though a described neighbour lies within the 3 A consensus radius
    top = crystal.positions[np.argmax(crystal.positions.sum(axis=1))]
    box = np.diag([30.0, 30.0, 30.0])
    pos = np.vstack([crystal.positions, [[25.0, 25.0, 25.0]], [top + 2.9 / np.sqrt(3.0)]])
    frame = Frame(pos, box, (False, False, False), np.ones(len(pos), np.int64))
    res = Classifier.load(consensus_model).classify(frame)
    assert res.undescribed[-2:].all() and (res.labels[-2:] == "unknown").all()
    assert (res.labels[:-2] != "unknown").mean() > 0.5


def test_dataset_rows_are_found_in_their_rebuilt_snapshot_copies(consensus_model, tmp_path):
    """frame_rows_predictions rebuilds each row's snapshot copy from the run's dump (the
    labelled snapshots in order are the run's groups) and picks the row's atom by id."""
    import json

    import h5py

    from insitu.frame import Frame
    from insitu.training.consensus_eval import frame_rows_predictions
    from insitu.training.transition_dataset import ROLE_CODE, snapshot_copy

    frames = []
    for k, sigma in enumerate((0.05, 0.3, 0.1)):
        fr = thermal(lattice("fcc", 3.52, 4), sigma, seed=k)
        perm = np.random.default_rng(k).permutation(len(fr))  # dumps need not be sorted
        frames.append(Frame(fr.positions[perm], fr.cell, fr.pbc, fr.types[perm],
                            fr.ids[perm], 100 * k))
    from insitu.io.lammps_dump import iter_lammps_dump
    from insitu.testing import write_dump

    dump = write_dump(tmp_path / "run.dump", frames)
    frames = list(iter_lammps_dump(dump))  # as the dataset generator reads them
    snapshots = [dict(step=0, label="fcc"), dict(step=100, label=None),
                 dict(step=200, label="fcc")]
    run = dict(name="Ni_heat_val_s7", role="val", seed=7, dump=str(dump), kind="heat",
               snapshots=snapshots)
    cols = {k: [] for k in ("role", "run_seed", "group", "missing_fraction", "atom_id",
                            "split")}
    expected = []
    clf = Classifier.load(consensus_model)
    for group, fr in zip((40, 41), (frames[0], frames[2])):  # labelled snapshots only
        for x in (0.0, 0.3):
            sub, rng = snapshot_copy(fr, 3, 7, group, x)
            pick = np.sort(rng.choice(len(sub), size=10, replace=False))
            expected.append(clf.classify(sub).probabilities[pick])
            for key, value in (("role", ROLE_CODE["val"]), ("run_seed", 7),
                               ("group", group), ("missing_fraction", x), ("split", 1)):
                cols[key].append(np.full(10, value))
            cols["atom_id"].append(sub.ids[pick])
    cols = {k: np.concatenate(v) for k, v in cols.items()}
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["provenance"] = json.dumps(dict(seed=3, runs=[run]))
    index = np.arange(len(cols["role"]))[::-1]  # any order
    got = frame_rows_predictions(clf, path, cols, index)
    np.testing.assert_allclose(got["mc"]["mean_probabilities"],
                               np.concatenate(expected)[index], atol=1e-6)
    cols["atom_id"][0] = 10_000  # an atom the copy does not hold
    with pytest.raises(ValueError, match="not atoms of its rebuilt snapshot copy"):
        frame_rows_predictions(clf, path, cols, index)


def test_insitu_option_turns_the_consensus_off():
    from insitu.coupling.options import Options

    assert Options.parse("a", ["every=5"]).consensus is True
    assert Options.parse("a", ["every=5", "consensus=no"]).consensus is False
    assert Options.parse("a", ["every=5", "consensus=yes"]).consensus is True


def test_ghost_probabilities_from_an_exchange_or_left_out(consensus_model):
    """An open point set like an MPI rank's: the consensus reads the foreign ghosts'
    probabilities from ``exchange`` (what their owners computed); a ghost the exchange
    misses is left out of its neighbours' means. Without an exchange the ghosts are
    classified here."""
    frame = thermal(lattice("fcc", 3.52, 5), 0.2, seed=9)
    clf = Classifier.load(consensus_model)
    whole = clf.classify(frame)
    points = frame.to_points(clf.required_cutoff)
    # this "rank" owns the atoms with x < 12 A; all others (and the images) are ghosts
    x = points.positions[:len(frame), 0]
    mine = np.nonzero(x < 12.0)[0]
    order = np.concatenate([mine, np.setdiff1d(np.arange(len(points.ids)), mine)])
    rank = Points(points.positions[order], points.types[order], points.ids[order], len(mine))
    owner = {int(i): k for k, i in enumerate(frame.ids)}
    calls = []

    def exchange(needed, needed_positions, ids, probabilities, described, have=True):
        calls.append(len(needed))
        rows = [owner[int(i)] for i in needed]
        found = np.full(len(needed), have)
        return found, whole.own_probabilities[rows], ~whole.undescribed[rows]

    got = clf.classify(rank, exchange=exchange)
    np.testing.assert_allclose(got.probabilities, whole.probabilities[mine], atol=1e-6)
    assert calls and calls[0] > 0
    missing = clf.classify(rank, exchange=lambda *a: exchange(*a, have=False))
    inner = (x[mine] > 4.5) & (x[mine] < 7.5)  # no ghost within 3 A
    edge = (x[mine] < 1.0) | (x[mine] > 11.0)
    assert inner.any() and edge.any()
    np.testing.assert_allclose(missing.probabilities[inner], whole.probabilities[mine][inner],
                               atol=1e-6)
    assert not np.allclose(missing.probabilities[edge], whole.probabilities[mine][edge],
                           atol=1e-6)
    alone = clf.classify(rank)
    np.testing.assert_allclose(alone.probabilities, whole.probabilities[mine], atol=1e-6)


def test_in_situ_the_descriptor_and_the_consensus_search_once(consensus_model, monkeypatch):
    """With the halo exchange (in situ) a Steinhardt model and its consensus read one search
    of the rank's nearest neighbours: no centre is searched twice, and the result is the
    one of separate searches."""
    from insitu.locality import CellList

    frame = thermal(lattice("fcc", 3.52, 5), 0.2, seed=4)
    clf = Classifier.load(consensus_model)
    points = frame.to_points(clf.required_cutoff)
    whole = clf.classify(frame)

    def exchange(needed, needed_positions, ids, probabilities, described):
        rows = [int(i) - 1 for i in needed]  # ids are 1..N in frame order
        return (np.ones(len(needed), bool), whole.own_probabilities[rows],
                ~whole.undescribed[rows])

    searched = []
    original = CellList.query_points

    def recording(self, centers, max_neighbors=None):
        searched.append(np.asarray(centers).copy())
        return original(self, centers, max_neighbors)

    monkeypatch.setattr(CellList, "query_points", recording)
    got = clf.classify(points, exchange=exchange)
    centres = np.concatenate(searched)
    centres = centres[centres < points.n_centers]
    assert len(centres) == len(np.unique(centres)) == points.n_centers
    np.testing.assert_allclose(got.probabilities, whole.probabilities, atol=1e-6)


def test_ghost_requirement_with_and_without_the_halo(consensus_model, boo_model):
    from insitu.coupling.ghost_check import ghost_requirement

    with_rule, plain = Classifier.load(consensus_model), Classifier.load(boo_model)
    r = plain.descriptor.required_cutoff  # 8 A (q-bar: 2 x 4 A) > the 3 A consensus
    assert ghost_requirement(plain, False) == (r, "its cutoff")
    assert ghost_requirement(with_rule, True) == (r, "its cutoff")
    radius, why = ghost_requirement(with_rule, False)
    assert radius == pytest.approx(r + 3.0) and "consensus radius 3.00" in why
    with_rule.consensus = Consensus(12, 9.0)
    assert ghost_requirement(with_rule, True)[0] == 9.0


def test_ghost_requirement_of_q_bar_with_the_halo():
    """crystal-boo (q-bar over the 12 nearest within 5 A, consensus within 4 A): with the
    halo its ghosts' q_lm come from their owners, so a rank needs atoms to 5 A, not 10."""
    from insitu.coupling.ghost_check import ghost_requirement
    from insitu.resources import model_path

    clf = Classifier.load(model_path("crystal-boo"))
    assert clf.descriptor.averaged and clf.descriptor.search_radius == 5.0
    assert clf.exchange_cutoff == 5.0 and clf.required_cutoff == 14.0
    assert ghost_requirement(clf, True) == (5.0, "its cutoff")
    radius, why = ghost_requirement(clf, False)
    assert radius == pytest.approx(14.0) and "descriptor cutoff 10.00" in why
