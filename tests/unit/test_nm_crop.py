"""Neighbors Maps at a smaller n_G cropped from a dataset stored at n_G 32
(insitu.training.nm_crop): the crop is what the descriptor computes at that n_G, the fit
option ``--n-grid`` reaches the model's metadata and every reader of the dataset, and a crop
that would not be exact is refused."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from insitu.descriptors import NeighborsMap
from insitu.descriptors.fingerprint import (
    DescriptorMismatch,
    check_fingerprint,
    descriptor_fingerprint,
)
from insitu.testing import lattice, remove_fraction, thermal
from insitu.training.datagen import CLASSES
from insitu.training.nm_crop import crop_maps, crop_note, cropped_descriptor, features_for


def _sparse_fcc(seed: int = 0):
    """Thermal fcc with most atoms removed: some atoms keep >= 16 neighbours within 6.5 A,
    others fewer (undescribed at n_G 32's default rule)."""
    return remove_fraction(thermal(lattice("fcc", 3.52, 5), 0.1, seed=seed), 0.8, seed=seed)


@pytest.mark.parametrize("n_grid", [16, 24])
def test_crop_equals_the_descriptor_at_the_smaller_grid(n_grid):
    frame = _sparse_fcc()
    big = NeighborsMap(6.5)  # the shipped datasets' descriptor (n_G 32)
    maps = big.compute(frame)
    undescribed = ~np.isfinite(maps).all(axis=(1, 2, 3))
    assert 0 < undescribed.sum() < len(maps)  # both kinds of atom are exercised
    small = cropped_descriptor(big, n_grid)
    assert small.n_grid == n_grid and small.min_neighbors == 16
    assert np.array_equal(crop_maps(maps, n_grid), small.compute(frame), equal_nan=True)
    # the default rule at n_G 16 (8 neighbours) describes atoms the stored maps do not
    default = NeighborsMap(6.5, n_grid).compute(frame)
    assert (np.isfinite(default).all(axis=(1, 2, 3)) & undescribed).any()


def test_features_for_crops_only_when_exact():
    big = NeighborsMap(6.5)
    maps = np.arange(2 * 32 * 32, dtype=np.float32).reshape(2, 1, 32, 32)
    assert features_for(maps, big, NeighborsMap(6.5)) is maps
    small = features_for(maps, big.to_metadata(), cropped_descriptor(big, 16).to_metadata())
    assert small.shape == (2, 1, 16, 16) and small.flags.c_contiguous
    assert np.array_equal(small, maps[:, :, :16, :16])
    for other in (NeighborsMap(6.0, 16, min_neighbors=16),           # cutoff
                  NeighborsMap(6.5, 16, gamma=1.0, min_neighbors=16),  # pixel exponent
                  NeighborsMap(6.5, 16, beta=2.0, min_neighbors=16),   # row exponent
                  NeighborsMap(6.5, 16),                               # undescribed atoms
                  NeighborsMap(6.5, 16, channel_weights=[{1: 1.0}], min_neighbors=16)):
        with pytest.raises(DescriptorMismatch, match="crop exactly only"):
            features_for(maps, big, other)
    with pytest.raises(DescriptorMismatch, match="parameters"):  # no crop to a larger grid
        features_for(maps[:, :, :16, :16], cropped_descriptor(big, 16), big)
    with pytest.raises(ValueError, match="crops to"):
        cropped_descriptor(big, 40)


@pytest.fixture(scope="module")
def nm_dataset(tmp_path_factory):
    """A small near-transition-style NM dataset stored at n_G 32 (with its fingerprint):
    fcc and a hot disordered structure, split 1 every third group, and its held-out file."""
    from insitu.training.transition_dataset import heldout_path

    tmp = tmp_path_factory.mktemp("crop")
    desc = NeighborsMap(6.5)

    def write(path, seeds, split_rule, role_heldout):
        feats, labels, groups = [], [], []
        for g, seed in enumerate(seeds):
            crystal = g % 2 == 0
            frame = thermal(lattice("fcc", 3.52, 4), 0.08 if crystal else 0.6, seed=seed)
            feats.append(desc.compute(frame))
            labels.append(np.full(len(frame.positions), 0 if crystal else 4))
            groups.append(np.full(len(frame.positions), g))
        feats, labels, groups = map(np.concatenate, (feats, labels, groups))
        n = len(labels)
        split = np.ones(n, int) if role_heldout else (groups % 3 == 2).astype(int)
        role = np.full(n, 2) if role_heldout else split
        with h5py.File(path, "w") as h5:
            ds = h5.create_dataset("nm", data=feats)
            ds.attrs["descriptor"] = json.dumps(desc.to_metadata())
            ds.attrs["fingerprint"] = json.dumps(descriptor_fingerprint(desc))
            cols = dict(label=labels, group=groups, split=split, role=role,
                        kind=np.zeros(n, int), material=np.zeros(n, int),
                        t_over_tm=np.where(labels == 0, 0.5, 1.3), missing_fraction=np.zeros(n),
                        cna=np.full(n, 5))
            for k, v in cols.items():
                h5.create_dataset(k, data=v)
            h5.attrs["classes"] = json.dumps(CLASSES)
            h5.attrs["materials"] = json.dumps(["Ni"])
            h5.attrs["provenance"] = json.dumps({"protocol": "transition"})

    main = tmp / "t.h5"
    write(main, range(6), None, False)
    write(heldout_path(main), (10, 11), None, True)
    return main


def test_fit_n_grid_reaches_the_model_and_every_reader(nm_dataset, tmp_path):
    from insitu.cli import main
    from insitu.model import Classifier
    from insitu.training.mc_calibration import calibrate_on_dataset
    from insitu.training.report import read_dataset
    from insitu.training.transition_report import evaluation_rows

    model = tmp_path / "m16.onnx"
    assert main(["train", "fit", "--data", str(nm_dataset), "--descriptor", "nm", "--arch",
                 "paper", "--n-grid", "16", "--out", str(model), "--epochs", "1",
                 "--threads", "1", "--no-card", "--quiet"]) == 0
    clf = Classifier.load(model)
    assert clf.novelty_threshold is not None  # train fit gives a CNN its novelty
    small = cropped_descriptor(NeighborsMap(6.5), 16)
    assert clf.metadata["descriptor"] == small.to_metadata()
    assert clf.feature_shape == (1, 16, 16)
    training = clf.metadata["training"]
    assert training["cropped_from"] == NeighborsMap(6.5).to_metadata()
    check_fingerprint(training["descriptor_fingerprint"], small, "model")
    assert "n_G 16" in crop_note(training) and crop_note({}) == ""  # the card says so
    feats, cols, _ = read_dataset(nm_dataset, clf)  # insitu train card
    with h5py.File(nm_dataset, "r") as h5:
        assert np.array_equal(feats, h5["nm"][:, :, :16, :16], equal_nan=True)
    rows = evaluation_rows(model, nm_dataset)  # the near-transition must-show figures
    assert len(rows["truth"]) == int((cols["split"] == 1).sum()) + 2 * 256
    cal = calibrate_on_dataset(model, nm_dataset)  # insitu train mc
    assert cal["atoms"] == int((cols["split"] == 1).sum())
    # a model whose map is not the exact crop is refused by the readers
    from insitu.training.export import update_metadata
    other = NeighborsMap(6.5, 16)  # min_neighbors 8: other undescribed atoms
    update_metadata(model, {"descriptor": other.to_metadata(),
                            "training": dict(training, descriptor_fingerprint=
                                             descriptor_fingerprint(other))})
    with pytest.raises(DescriptorMismatch, match="crop exactly only"):
        read_dataset(nm_dataset, Classifier.load(model))
    with pytest.raises(DescriptorMismatch, match="crop exactly only"):
        calibrate_on_dataset(model, nm_dataset)


def test_fit_refuses_a_larger_grid_than_stored(nm_dataset, tmp_path):
    from insitu.training.train import fit_from_hdf5

    with pytest.raises(ValueError, match="crops to"):
        fit_from_hdf5(nm_dataset, "nm", out=tmp_path / "m.onnx", epochs=1, n_grid=40,
                      card=False, progress=False)
