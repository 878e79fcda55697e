"""Where the shipped crystal-nm model is uncertain (MC dropout, ARISE Supp. Eq. 5), on
structures built here: Voronoi polycrystals of each training structure (4 randomly oriented
grains, free surfaces, relaxed with LAMMPS and held at 0.5 T_m), and structures outside
the training classes. Run with ``-s`` for the tables."""

from __future__ import annotations

import numpy as np
import pytest
from uncertainty_structures import (
    b2,
    boundary_distance,
    polycrystal,
    random_points,
    relax,
    simple_cubic,
    stacking_fault,
)

from insitu.model import Classifier
from insitu.resources import model_path
from insitu.testing import lattice, thermal
from insitu.training.datagen import MATERIALS

POLY = {"bcc": "Fe", "fcc": "Al", "hcp": "Zr", "cubic_diamond": "Si"}
NN = {"bcc": np.sqrt(3) / 2, "fcc": 1 / np.sqrt(2), "hcp": 1.0, "cubic_diamond": np.sqrt(3) / 4}
BOUNDARY_ANGSTROM = 2.0  # atoms this close to a grain boundary or a free surface
INTERIOR_ANGSTROM = 6.5  # the descriptor's cutoff: the whole environment inside one grain
BINS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.5, 9.0, np.inf)
CONFIDENT_BOUNDARIES = {("hot", "hcp")}
"""Boundaries the model labels with confidence (measured; see the crystal-nm card): the hcp
Zr slab at 0.5 T_m (Zr is held out of the training; median MI ratio 0.9, most of the slab
labelled liquid with low MI): a slab that disorders at that temperature
(test_hot_hcp_zr_slab_disorders), not a crystal with boundaries."""


def slab_polycrystal(structure: str):
    """(material, frame, each atom's distance to the nearest boundary or surface) of the
    test's 4-grain slab of ``structure`` (its element in POLY, seeded by its place there)."""
    mat = MATERIALS[POLY[structure]]
    frame, grain, centres, slab = polycrystal(structure, mat.a, 4, 45.0, 32.0,
                                              seed=list(POLY).index(structure) + 1,
                                              nn_distance=NN[structure] * mat.a)
    return mat, frame, boundary_distance(frame.positions, grain, centres, 45.0, slab)


@pytest.fixture(scope="module")
def clf():
    model = Classifier.load(model_path("crystal-nm"))
    assert model.mc_passes > 1 and model.mi_threshold is not None
    return model


@pytest.fixture(scope="module")
def polycrystals(clf, tmp_path_factory):
    """{(structure, 'relaxed' | 'hot'): (distance to the nearest boundary, MI, labels,
    novel)}."""
    out = {}
    for structure, name in POLY.items():
        mat, frame, distance = slab_polycrystal(structure)
        # distances from the construction (ids are construction order): relaxation and
        # 2 ps at 0.5 T_m move atoms by far less than the bins
        runs = relax(frame, mat, tmp_path_factory.mktemp(name), temperature=0.5 * mat.t_melt)
        for state, f in runs.items():
            res = clf.classify(f)
            out[structure, state] = (distance[f.ids - 1], res.mutual_information,
                                     res.label_index, res.novel)
    return out


def test_polycrystal_boundaries_are_uncertain_interiors_are_not(clf, polycrystals):
    print(f"\ncrystal-nm, T = {clf.mc_passes}, MI threshold {clf.mi_threshold:.4f} bits")
    print("| structure | state | boundary atoms (< 2 A) | interior atoms (> 6.5 A) | median MI "
          "boundary | median MI interior | ratio | interior below threshold | interior "
          "labelled right | boundary unknown | interior novel | boundary novel |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    failures = []
    for (structure, state), (d, mi, lab, novel) in polycrystals.items():
        edge, inner = d < BOUNDARY_ANGSTROM, d > INTERIOR_ANGSTROM
        ratio = np.median(mi[edge]) / np.median(mi[inner])
        below = np.mean(mi[inner] <= clf.mi_threshold)
        right = np.mean(lab[inner] == clf.classes.index(structure))
        print(f"| {structure} | {state} | {edge.sum()} | {inner.sum()} | "
              f"{np.median(mi[edge]):.4f} | {np.median(mi[inner]):.5f} | {ratio:.1f} | "
              f"{100 * below:.1f} % | {100 * right:.1f} % | {100 * np.mean(lab[edge] < 0):.1f} % | "
              f"{100 * novel[inner].mean():.1f} % | {100 * novel[edge].mean():.1f} % |")
        assert edge.sum() > 300 and inner.sum() > 200
        # every grain interior is certain; every boundary is >= 6x less so (measured: 44x
        # to 2,400x), but for the hot hcp Zr slab (ratio 0.9, see CONFIDENT_BOUNDARIES)
        # and no grain interior is novel (measured: 0 %)
        if below < 0.9 or novel[inner].mean() > 0.05 or (
                ratio < 6 and (state, structure) not in CONFIDENT_BOUNDARIES):
            failures.append((structure, state, round(float(ratio), 2), round(below, 3)))
    pooled = {s: np.concatenate([v[1] for (_, st), v in polycrystals.items() if st == s])
              for s in ("relaxed", "hot")}
    dist = {s: np.concatenate([v[0] for (_, st), v in polycrystals.items() if st == s])
            for s in ("relaxed", "hot")}
    for s in pooled:
        ratio = (np.median(pooled[s][dist[s] < BOUNDARY_ANGSTROM])
                 / np.median(pooled[s][dist[s] > INTERIOR_ANGSTROM]))
        print(f"all four structures, {s}: median MI ratio boundary / interior {ratio:.1f}")
        if ratio < 6:
            failures.append(("all", s, round(float(ratio), 2), None))
    assert not failures, f"(structure, state, ratio, interior below threshold): {failures}"


def test_mean_mi_falls_with_the_distance_from_the_boundary(polycrystals):
    print("\nmean MI (bits) against the distance from the nearest grain boundary or free "
          "surface")
    print("| distance (A) | " + " | ".join(f"{s} {st}" for s, st in polycrystals) + " |")
    print("|---|" + "---|" * len(polycrystals))
    table = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        row = [float(np.mean(mi[(d >= lo) & (d < hi)])) for d, mi, *_ in polycrystals.values()]
        table.append(row)
        print(f"| {lo:g}-{hi:g} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    keep = [i for i, (s, st) in enumerate(polycrystals) if (st, s) not in CONFIDENT_BOUNDARIES]
    table = np.array(table)[:, keep]
    # the grain-boundary core is the most uncertain, the grain interior the least
    assert np.all(table[0] > 2 * table[-1]), table[[0, -1]]
    hot = [i for i, k in enumerate(keep) if list(polycrystals)[k][1] == "hot"]
    assert np.all(table[0, hot] > 5 * table[-1, hot]), table[[0, -1]]


def outside_the_classes(clf, name: str) -> dict:
    """Classify the structures outside the training classes with ``clf``; print their
    table (run with ``-s``); {structure: (median MI, unknown, novel, most common label)}."""
    sf, to_fault = stacking_fault()
    d111 = 4.05 / np.sqrt(3.0)
    gas = random_points(300, density=0.0005, seed=2)
    cases = {"simple cubic (a = 3.359 A)": (simple_cubic(), None),
             "B2, 2 types, one species channel (a = 2.887 A)": (b2(), None),
             "fcc/hcp stacking fault, 2 hcp-like layers": (sf, to_fault < d111),
             "fcc/hcp stacking fault, 4 layers": (sf, to_fault < 2 * d111),
             "random points (Al density)": (random_points(), None),
             "random points (0.04 / A^3)": (random_points(density=0.04, seed=5), None),
             "random points (0.085 / A^3)": (random_points(density=0.085, seed=6), None),
             "isolated-atom gas": (gas, None)}
    p99 = clf.metadata["mc_calibration"]["mi_percentiles_50_90_99_99.9"][2]
    print(f"\n{name}, T = {clf.mc_passes}; 99th percentile of the validation MI "
          f"{p99:.4f} bits; MI threshold {clf.mi_threshold:.4f} bits; novelty threshold "
          f"{clf.novelty_threshold:.4g}")
    print("| structure | atoms | median MI | unknown | by MI | by novelty | by confidence | "
          "undescribed | most common label |")
    print("|---|---|---|---|---|---|---|---|---|")
    measured = {}
    for structure, (frame, select) in cases.items():
        res = clf.classify(frame)
        sel = np.ones(len(frame), bool) if select is None else select
        unknown = res.label_index[sel] < 0
        by_mi = res.uncertain[sel]
        by_conf = res.confidence[sel] < clf.confidence_threshold
        top = np.bincount(res.probabilities[sel].argmax(1), minlength=len(clf.classes))
        common = clf.classes[int(top.argmax())] if res.probabilities[sel].any() else "-"
        measured[structure] = (float(np.median(res.mutual_information[sel])), unknown.mean(),
                          res.novel[sel].mean(), common)
        print(f"| {structure} | {sel.sum()} | {measured[structure][0]:.4f} | "
              f"{100 * unknown.mean():.1f} % | {100 * by_mi.mean():.1f} % | "
              f"{100 * res.novel[sel].mean():.1f} % | "
              f"{100 * by_conf.mean():.1f} % | {100 * res.undescribed[sel].mean():.1f} % | "
              f"{common} |")
    return measured


def test_structures_outside_the_training_classes(clf):
    measured = outside_the_classes(clf, "crystal-nm")
    # isolated atoms cannot be described: unknown, whatever the network would say
    assert measured["isolated-atom gas"][1] == 1.0
    # random points, which the head maps onto cubic_diamond with an MI near 0, have trunk
    # features far from every training class: unknown by novelty at any density
    for name in [n for n in measured if n.startswith("random points")]:
        assert measured[name][1] >= 0.9 and measured[name][2] >= 0.9, (name, measured[name])
    # simple cubic mostly so (measured 85 %); B2 seen through one channel *is* bcc
    assert measured["simple cubic (a = 3.359 A)"][2] > 0.5
    b2_case = measured["B2, 2 types, one species channel (a = 2.887 A)"]
    assert b2_case[3] == "bcc" and b2_case[1] < 0.05
    # simple cubic is far less certain than the validation atoms (median MI ~100x theirs),
    # though for most of its atoms not above the threshold; the other structures are
    # mapped confidently onto a training class (B2 through one geometric channel is bcc)
    p50 = clf.metadata["mc_calibration"]["mi_percentiles_50_90_99_99.9"][0]
    assert measured["simple cubic (a = 3.359 A)"][0] > 20 * p50


def test_crystal_boo_flags_simple_cubic_by_its_descriptor_features():
    """crystal-boo's novelty is on its 13 descriptor features, q-bar / w-bar and the spread
    of the nearest-neighbour distance (its trunk maps simple cubic onto fcc): simple cubic
    unknown, thermal crystals and B2 (bcc) not."""
    boo = Classifier.load(model_path("crystal-boo"))
    assert boo.metadata["novelty"]["source"] == "input"
    assert boo.descriptor.feature_names[-1] == "r1_spread"
    sc = boo.classify(simple_cubic())
    assert sc.novel.mean() > 0.9 and np.all(sc.label_index[sc.novel] == -1)
    assert boo.classify(simple_cubic(a=2.9)).novel.mean() > 0.9
    for structure, a in (("fcc", 4.05), ("bcc", 2.87), ("hcp", 3.21)):
        frame = thermal(lattice(structure, a, 6), 0.08, seed=1)
        res = boo.classify(frame)
        assert res.novel.mean() < 0.01, structure
        assert np.mean(res.labels == structure) > 0.95, structure
    res = boo.classify(b2())
    assert res.novel.mean() < 0.01 and np.mean(res.labels == "bcc") > 0.95


def test_crystal_boo_outside_the_training_classes():
    """Uniformly random points look like a liquid in bond directions (q-bar, w-bar) but
    spread their nearest-neighbour distances as no condensed phase does: crystal-boo calls
    them unknown by novelty at three densities (measured 90-94 %; 95-97 % before Tersoff's
    T2 Si liquid joined the training data: its half-empty copies spread their distances
    nearly as much, and the liquid class widened; 0.1 % before the spread feature), >= 90 %
    of them together; simple cubic unknown; gas atoms undescribed."""
    boo = Classifier.load(model_path("crystal-boo"))
    measured = outside_the_classes(boo, "crystal-boo")
    random_sets = [n for n in measured if n.startswith("random points")]
    for name in random_sets:
        assert measured[name][1] >= 0.85 and measured[name][2] >= 0.8, (name, measured[name])
    assert np.mean([measured[n][1] for n in random_sets]) >= 0.9
    assert measured["simple cubic (a = 3.359 A)"][1] >= 0.9
    assert measured["isolated-atom gas"][1] == 1.0


def test_hot_hcp_zr_slab_disorders(clf, tmp_path):
    """The premise of CONFIDENT_BOUNDARIES: the hcp Zr polycrystal slab at the test's
    0.5 T_m (1000 K) is not a crystal with sharp boundaries but a slab on its way to
    disorder. Held 20 ps instead of 2, its grain interiors lose the hcp order LAMMPS CNA
    finds (measured: 28 % hcp at 2 ps, 0 % at 20 ps; the fcc Al slab held the same way at
    its 0.5 T_m keeps 87 %) and crystal-nm calls them liquid (measured: 100 %)."""
    from insitu.training.cna_reference import CNA_CODE, CNACalculator, cna_cutoff

    mat, frame, distance = slab_polycrystal("hcp")
    hot = relax(frame, mat, tmp_path, temperature=0.5 * mat.t_melt, steps=20000)["hot"]
    inner = distance[hot.ids - 1] > INTERIOR_ANGSTROM
    volume_per_atom = np.sqrt(3) / 4 * mat.a ** 3 * 1.633  # ideal c/a
    cna = CNACalculator()(hot, cna_cutoff("hcp", volume_per_atom))
    liquid = clf.classify(hot).label_index == clf.classes.index("liquid")
    print(f"\nhcp Zr slab, 20 ps at {0.5 * mat.t_melt:.0f} K: grain interiors CNA hcp "
          f"{100 * np.mean(cna[inner] == CNA_CODE['hcp']):.1f} %, crystal-nm liquid "
          f"{100 * liquid[inner].mean():.1f} % ({inner.sum()} atoms)")
    assert inner.sum() > 200
    assert np.mean(cna[inner] == CNA_CODE["hcp"]) < 0.05
    assert liquid[inner].mean() > 0.9
