"""The Neighbors Map network family by name (insitu.training.nets.NM_ARCHITECTURES):
sizes and FLOP counts, the MC-dropout split (trunk once, head T times) through the ONNX
export, ``--arch`` on the command line and in ``fit_from_hdf5``."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from insitu.cli import train as train_cli
from insitu.descriptors import NeighborsMap
from insitu.model import Classifier
from insitu.training.export import export_onnx
from insitu.training.nets import (
    DEFAULT_NM_ARCH,
    NM_ARCH_TEXT,
    NM_ARCHITECTURES,
    NeighborsMapCNN,
    build_model,
    count_parameters,
    multiply_adds,
)
from insitu.training.train import fit_from_hdf5

CLASSES = ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"]


def test_paper_cnn_multiply_adds_by_hand():
    # Conv(1,16,5) 32x32, Conv(16,32,3) 32x32, Conv(32,16,3) 16x16, Conv(16,16,3,s2) 8x8,
    # Conv(16,32,2,s2) 4x4, Linear(512,24), Linear(24,5)
    by_hand = (1024 * 16 * 25 + 1024 * 32 * 16 * 9 + 256 * 16 * 32 * 9 + 64 * 16 * 16 * 9
               + 16 * 32 * 16 * 4 + 512 * 24 + 24 * 5)
    assert multiply_adds(NeighborsMapCNN(1, 5), (1, 32, 32)) == by_hand
    assert isinstance(build_model("paper", (1, 32, 32), 5), NeighborsMapCNN)
    assert type(build_model("cnn", (1, 32, 32), 5)) is NeighborsMapCNN


@pytest.mark.parametrize("arch", sorted(set(NM_ARCHITECTURES) - {"paper"}))
def test_light_networks_are_lighter_and_keep_the_mc_split(tmp_path, arch):
    shape = (1, 32, 32)
    paper = build_model("paper", shape, 5)
    net = build_model(arch, shape, 5).eval()
    assert count_parameters(net) <= count_parameters(paper)
    assert multiply_adds(net, shape) < multiply_adds(paper, shape) / 2
    assert arch in NM_ARCH_TEXT
    x = torch.rand(7, *shape)
    head = net.head_layers()
    assert isinstance(head[0], torch.nn.Dropout)  # dropout first: the head runs T times
    with torch.no_grad():
        torch.testing.assert_close(head(net.trunk(x)), net(x))
    # exported with the mask input; one pass through onnxruntime equals torch
    desc = NeighborsMap(cutoff=5.0, n_grid=32)
    path = export_onnx(net, desc, CLASSES, tmp_path / f"{arch}.onnx", mc_passes=4)
    clf = Classifier.load(path)
    assert clf.mc is not None and clf.mc_passes == 4
    with torch.no_grad():
        ref = torch.softmax(net(x), -1).numpy()
    np.testing.assert_allclose(clf.predict_proba(x.numpy()), ref, atol=1e-5)
    mean, mi, _ = clf.predict_mc(x.numpy(), np.arange(1, 8), step=3)
    assert mean.shape == (7, 5) and np.all(mi >= 0)


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(ValueError, match="lite"):
        build_model("resnet", (1, 32, 32), 5)


def test_arch_option_of_fit_and_crystal():
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    for sub in ("fit", "crystal"):
        assert parser.parse_args([sub, "--arch", "tiny"]).arch == "tiny"
        assert parser.parse_args([sub]).arch is None  # the default of nets.py
    assert DEFAULT_NM_ARCH in NM_ARCHITECTURES


def test_fit_rejects_an_architecture_of_the_other_descriptor(tmp_path):
    data = tmp_path / "d.h5"
    data.write_bytes(b"")  # never read: the name is checked first
    with pytest.raises(ValueError, match="mlp"):
        fit_from_hdf5(data, "boo", arch="lite")
    with pytest.raises(ValueError, match="paper"):
        fit_from_hdf5(data, "nm", arch="mlp")


def test_light_networks_are_at_least_4x_lighter_than_the_paper_cnn():
    """`--arch stride` (the fastest within a point of the paper's validation accuracy) costs
    at least 4x fewer multiply-adds per atom than the paper CNN, the default."""
    shape = (1, 32, 32)
    assert DEFAULT_NM_ARCH == "paper"
    light = build_model("stride", shape, 5)
    assert type(light) is not NeighborsMapCNN
    assert multiply_adds(light, shape) * 4 < multiply_adds(build_model("paper", shape, 5),
                                                           shape)
